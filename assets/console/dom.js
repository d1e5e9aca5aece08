// Builds DOM nodes. Text is always set as text, never parsed as HTML, so
// nothing the API returns (a username, a ticket) can become markup.

/** h('p', { class: 'hint' }, 'text', child, ...) */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'checked' || name === 'value' || name === 'disabled') node[name] = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

let ids = 0;
/** An id unique in the page, to tie a label or hint to its input. */
export const uid = (prefix) => `${prefix}-${++ids}`;

/**
 * A labelled input with room for a hint and an error, tied to it by
 * aria-describedby so screen readers read them with the field.
 */
export function field(label, input, hint) {
  const id = input.id || uid(input.name || 'field');
  input.id = id;
  const hintNode = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errorNode = h('p', { class: 'error', id: `${id}-error`, hidden: true });
  input.setAttribute('aria-describedby', [hintNode && hintNode.id, errorNode.id].filter(Boolean).join(' '));
  const wrapper = h('div', { class: 'field' }, h('label', { for: id }, label), input, hintNode, errorNode);
  wrapper.dataset.field = input.name;
  return wrapper;
}

/** Shows `message` under the field named `name` in `form`; returns its input. */
export function showFieldError(form, name, message) {
  const input = form.elements.namedItem(name);
  if (!input || !input.id) return null;
  const error = form.querySelector(`#${CSS.escape(input.id)}-error`);
  if (error) {
    error.textContent = message;
    error.hidden = false;
  }
  input.setAttribute('aria-invalid', 'true');
  return input;
}

/** Clears every field error of `form`. */
export function clearFieldErrors(form) {
  for (const error of form.querySelectorAll('.error')) {
    error.textContent = '';
    error.hidden = true;
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}
