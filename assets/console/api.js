// The console's one way to the server: POST /graphql on the same origin,
// JSON only, with the HttpOnly session cookie the browser keeps. The page
// never sees the session token and stores nothing about the person.
import { currentLanguage } from './i18n.js';

/** A failed GraphQL answer: the first error's code, plus every error. */
export class ApiError extends Error {
  constructor(errors) {
    super(errors[0]?.message || 'error');
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || 'INTERNAL';
    this.extensions = errors[0]?.extensions || {};
  }
}

/** Runs one document with its variables; returns `data` or throws ApiError. */
export async function gql(document, variables = {}) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'accept-language': currentLanguage() },
      body: JSON.stringify({ query: document, variables }),
    });
  } catch {
    throw new ApiError([{ message: 'network', extensions: { code: 'NETWORK' } }]);
  }
  const body = await response.json().catch(() => null);
  if (!body) throw new ApiError([{ message: `HTTP ${response.status}`, extensions: { code: 'INTERNAL' } }]);
  // The server cleared a dead session cookie: the page is signed out.
  if (body.extensions?.session === 'EXPIRED') window.dispatchEvent(new Event('custos:session-expired'));
  if (body.errors?.length) throw new ApiError(body.errors);
  return body.data;
}
