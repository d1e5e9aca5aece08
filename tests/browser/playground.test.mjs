// Opens the Custos playground in headless Chromium (Debian's package, no
// downloaded browser), runs `{ policy { version } }` from the GraphiQL
// editor and checks the answer appears. Every request the page makes must
// stay on loopback: anything else is blocked and fails the test.
//
// Usage: CUSTOS_URL=http://127.0.0.1:PORT node playground.test.mjs
import { chromium } from 'playwright-core';

const base = process.env.CUSTOS_URL;
if (!base) {
  console.error('set CUSTOS_URL to the running server');
  process.exit(2);
}

const offLoopback = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
let failed = false;
try {
  const page = await browser.newPage();
  await page.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1' || host === 'localhost' || host === '[::1]') {
      return route.continue();
    }
    offLoopback.push(route.request().url());
    return route.abort();
  });
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().includes('favicon')) consoleErrors.push(msg.text());
  });

  await page.goto(`${base}/graphql`, { waitUntil: 'networkidle' });
  // The editor is ready once CodeMirror shows the starting query.
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 30000 });
  const run = page.locator('button.graphiql-execute-button');
  await run.click();
  const result = page.locator('.graphiql-response .CodeMirror');
  await result.waitFor({ timeout: 30000 });
  await page.waitForFunction(
    () => document.querySelector('.graphiql-response')?.textContent?.includes('"version"'),
    null,
    { timeout: 30000 },
  );
  const text = await page.locator('.graphiql-response').textContent();
  if (!/"version":\s*"[^"]+"/.test(text)) {
    console.error('the answer did not show a policy version:', text);
    failed = true;
  }
  if (consoleErrors.length) {
    console.error('console errors:', consoleErrors);
    failed = true;
  }
} catch (err) {
  console.error(err);
  failed = true;
} finally {
  await browser.close();
}
if (offLoopback.length) {
  console.error('requests left loopback:', offLoopback);
  failed = true;
}
if (failed) {
  console.log('playground browser test FAILED');
  process.exit(1);
}
console.log('playground: ran { policy { version } } in GraphiQL and saw the answer');
console.log('playground browser test passed');
