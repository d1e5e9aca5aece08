// What every form of the console does: submit without reloading, show
// the result in a live region, and turn API errors into text per field.
import { h, replace, showFieldError, clearFieldErrors } from './dom.js';
import { t, formatDateTime } from './i18n.js';

/** A box whose changes screen readers announce. */
export const liveRegion = () => h('div', { role: 'status', 'aria-live': 'polite' });

/** A highlighted message: kind is '', 'ok' or 'warn'. */
export const notice = (kind, ...children) => h('div', { class: `notice ${kind}` }, ...children);

/** Shows a message in a live region. */
export function say(region, kind, ...children) {
  replace(region, notice(kind, ...children));
}

/**
 * The console's own text for an API error, chosen by its code (the API's
 * message is shown beside it as a detail).
 */
export function errorText(error) {
  const extensions = error.extensions || {};
  const code = extensions.code || 'INTERNAL';
  if (code === 'WEAK_PASSWORD' && extensions.reason) return t(`password.${extensions.reason}`);
  const text = t(`error.${code}`, { seconds: extensions.retryAfterSeconds ?? '?' });
  // When the purge runs, where the API says so.
  if (code === 'ACCOUNT_DELETION_SCHEDULED' && extensions.purgeAfter) {
    return `${text} ${t('deletion.purgeAfter', { date: formatDateTime(extensions.purgeAfter) })}`;
  }
  return text;
}

/** An error as a notice: the console's text, then the API's message. */
export function errorNotice(error) {
  const first = error.errors ? error.errors[0] : error;
  const detail = first.message && first.extensions?.code !== 'NETWORK' ? first.message : null;
  return notice('warn', h('p', {}, errorText(first)),
    detail && h('p', { class: 'hint' }, t('error.detail'), ' ', detail),
    first.extensions?.requestId && h('p', { class: 'hint' }, t('error.requestId'), ' ', first.extensions.requestId));
}

/**
 * Runs `action(formData)` on submit. Errors naming a field of the form are
 * shown under that field (the first gets focus); the rest in `region`.
 */
export function onSubmit(form, region, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    replace(region);
    const buttons = form.querySelectorAll('button');
    for (const button of buttons) button.disabled = true;
    try {
      await action(new FormData(form));
    } catch (error) {
      showErrors(form, region, error);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  });
}

function showErrors(form, region, error) {
  const errors = error.errors || [{ message: String(error), extensions: { code: 'INTERNAL' } }];
  let first = null;
  const unplaced = [];
  for (const item of errors) {
    const name = item.extensions?.field;
    const input = name && showFieldError(form, name, `${errorText(item)} ${item.message || ''}`.trim());
    if (input) first = first || input;
    else unplaced.push(item);
  }
  if (unplaced.length) replace(region, errorNotice({ errors: unplaced }));
  if (first) first.focus();
  else if (unplaced.length) region.focus?.();
}
