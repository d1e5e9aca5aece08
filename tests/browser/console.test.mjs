// Walks the account console in headless Chromium as a person would, on
// SQLite with a real SMTP server (a sink on loopback): sign up, open the
// verification link from the mail, sign in, switch a purpose on and off,
// download the export, change the password, ask for deletion, open the
// confirm link and see the date, open the cancel link, sign in again; then
// a forgotten password through its link, a guardian refusing through
// theirs, and a guest ticket. Every request must stay on loopback, the
// page must log no error (a CSP violation is one), links' tokens must
// leave the address bar, and axe-core must find no serious or critical
// violation on any view. Screenshots of the main views, in English and
// Chinese, go to docs/console/.
//
// Usage: CUSTOS_BIN=target/debug/custos node console.test.mjs
import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { startSmtpSink } from './smtp-sink.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.CUSTOS_BIN;
if (!bin) {
  console.error('set CUSTOS_BIN to the custos binary');
  process.exit(2);
}
const shots = process.env.CONSOLE_SCREENSHOTS ?? join(here, '../../docs/console');
const axeSource = readFileSync(join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
const PASSWORD = 'a fine long passphrase';

let passed = 0;
const failures = [];
const pageErrors = [];
const offLoopback = [];

async function step(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (error) {
    failures.push(name);
    console.log(`not ok - ${name}\n  ${String(error.stack || error).split('\n').slice(0, 4).join('\n  ')}`);
  }
}

const freePort = () => new Promise((resolve) => {
  const probe = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});

// --- the server, on a throwaway SQLite database, mailing the sink ---
const smtp = await startSmtpSink();
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const work = mkdtempSync(join(tmpdir(), 'custos-console-'));
const serverEnv = {
  PATH: process.env.PATH,
  CUSTOS_BIND: `127.0.0.1:${port}`,
  CUSTOS_PUBLIC_URL: base,
  CUSTOS_DATABASE_URL: `sqlite://${join(work, 'custos.db')}?mode=rwc`,
  CUSTOS_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
  CUSTOS_RATE_LIMIT_PER_MINUTE: '1000',
  CUSTOS_LOG_FORMAT: 'json',
};
const server = spawn(bin, ['serve'], {
  cwd: work,
  stdio: ['ignore', openSync(join(work, 'server.log'), 'w'), openSync(join(work, 'server.log'), 'a')],
  env: serverEnv,
});
for (let i = 0; ; i += 1) {
  const up = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
  if (up) break;
  if (i > 150) throw new Error(`the server did not start:\n${readFileSync(join(work, 'server.log'), 'utf8')}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
}

/** Runs one GraphQL operation outside the browser (the admin's part). */
async function api(query, variables, token) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

/** As an admin: publishes a major policy version with a new purpose. */
async function publishMajorPolicy() {
  const made = spawnSync(bin, ['create-admin', '--username', 'walk_admin', '--email', 'walk.admin@example.org', '--password-stdin'],
    { cwd: work, env: serverEnv, input: `${PASSWORD}\n` });
  if (made.status !== 0) throw new Error(`create-admin failed: ${made.stderr}`);
  const { login } = await api('mutation($i: LoginInput!) { login(input: $i) { token } }',
    { i: { login: 'walk_admin', password: PASSWORD } });
  const { policy } = await api('{ policy(language: "en") { purposes { code title description required sensitive dataCategories } } }');
  const fields = (await api('{ __type(name: "PublishPolicyInput") { inputFields { name } } }'))
    .__type.inputFields.map((f) => f.name);
  const input = {
    version: '2027-01-01',
    major: true,
    language: 'en',
    summaryOfChanges: 'Adds suggestions of friends who are near you.',
    text: 'The updated policy text.',
    purposes: [...policy.purposes, {
      code: 'nearby_friends', title: 'Nearby friends', description: 'Suggests friends who are near you.',
      required: false, sensitive: false, dataCategories: ['approximate_location'],
    }],
  };
  if (fields.includes('changeKinds')) input.changeKinds = ['SERVICE_MODEL'];
  await api('mutation($i: PublishPolicyInput!) { publishPolicy(input: $i) { version } }', { i: input }, login.token);
}

/** The newest link to `path` mailed to `address`, waiting for it to arrive. */
async function mailedLink(address, path, after = 0) {
  const prefix = `${base}${path}?token=`;
  for (let i = 0; i < 100; i += 1) {
    const found = smtp.messages.slice(after).reverse()
      .find((m) => m.to.includes(address) && m.text.includes(prefix));
    if (found) return prefix + found.text.split(prefix)[1].match(/^[A-Za-z0-9_-]+/)[0];
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no mail to ${address} with a ${path} link`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function newPage(locale) {
  const context = await browser.newContext({ locale, acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  await page.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1' || host === 'localhost') return route.continue();
    offLoopback.push(route.request().url());
    return route.abort();
  });
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  return page;
}

/** Opens `path` and waits for its view's heading. */
async function open(page, path) {
  await page.goto(path.startsWith('http') ? path : base + path);
  await page.locator('main h1').first().waitFor();
}

/** axe-core on the current view: no serious or critical violation. */
async function accessible(page, view) {
  // Run through the DevTools protocol, so the page's CSP need not allow it.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => (await window.axe.run(document)).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
  if (violations.length) throw new Error(`axe on ${view}:\n${violations.join('\n')}`);
}

async function shoot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function view(page, path, name) {
  await open(page, path);
  await accessible(page, path);
  await shoot(page, name);
}

const status = (page, text) => page.locator('main [role="status"]', { hasText: text }).first().waitFor();

function tokenGone(page) {
  if (new URL(page.url()).search !== '') throw new Error(`the token stayed in the address bar: ${page.url()}`);
}

async function signIn(page, login, password) {
  await open(page, '/signin');
  await page.getByLabel('Username or email').fill(login);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Hello, walker' }).waitFor();
}

try {
  const page = await newPage('en-GB');

  await step('sign up, with optional purposes off and sensitive ones asked apart', async () => {
    await view(page, '/signup', 'en-signup');
    for (const box of await page.locator('input[name="grantPurposes"]').all()) {
      if (await box.isChecked()) throw new Error('an optional purpose was ticked in advance');
    }
    await page.getByLabel('Username', { exact: true }).fill('walker');
    await page.getByLabel('Email address', { exact: true }).fill('walker@example.org');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: /and sign up/ }).click();
    await status(page, 'Check your mail');
  });

  await step('open the verification link from the mail', async () => {
    await open(page, await mailedLink('walker@example.org', '/verify-email'));
    await page.getByText('Your email address is verified.').waitFor();
    tokenGone(page);
    await accessible(page, '/verify-email');
  });

  await step('sign in', async () => {
    await signIn(page, 'walker', PASSWORD);
    await accessible(page, '/');
    await shoot(page, 'en-home');
  });

  await step('switch the language, which sets the account language', async () => {
    await page.getByRole('button', { name: '中文' }).click();
    await page.getByRole('heading', { level: 1, name: 'walker，你好' }).waitFor();
    await accessible(page, '/ in zh-CN');
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('heading', { level: 1, name: 'Hello, walker' }).waitFor();
  });

  await step('switch a purpose on and off in the privacy centre', async () => {
    await view(page, '/settings/privacy', 'en-privacy-centre');
    const updates = page.locator('#purpose-product_updates');
    await updates.check();
    await status(page, 'Turned on');
    await updates.uncheck();
    await status(page, 'Turned off');
    await page.locator('tbody tr', { hasText: 'Withdrawn' }).first().waitFor();
    if (!(await page.locator('#purpose-account').isDisabled())) throw new Error('a required purpose can be switched');
    await accessible(page, '/settings/privacy after changes');
  });

  await step('download the export', async () => {
    await view(page, '/my-data', 'en-my-data');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download as JSON' }).click(),
    ]);
    const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
    if (exported.account.username !== 'walker') throw new Error('the export is not the account');
    if (exported.consentLedger.length < 3) throw new Error('the export lacks the consent decisions');
  });

  await step('change the password', async () => {
    await view(page, '/profile', 'en-profile');
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password', { exact: true }).fill('second long passphrase');
    await page.getByRole('button', { name: 'Change password' }).click();
    await status(page, 'Your password is changed');
  });

  await step('ask for deletion, confirm by the link, see the date, cancel by the link', async () => {
    await view(page, '/delete-account', 'en-delete-account');
    await page.getByLabel('Username').fill('walker');
    await page.getByLabel('Bound email address').fill('walker@example.org');
    await page.getByRole('button', { name: 'Ask to delete' }).click();
    await status(page, 'confirmation link is on its way');
    const confirm = await mailedLink('walker@example.org', '/confirm-deletion');
    const mails = smtp.messages.length;
    await open(page, confirm);
    tokenGone(page);
    await accessible(page, '/confirm-deletion');
    await page.getByRole('button', { name: 'Delete my account' }).click();
    await status(page, 'Scheduled: your data will be erased after');
    await page.getByRole('link', { name: 'Sign in', exact: true }).waitFor();
    const text = await page.locator('main [role="status"]').first().textContent();
    if (!/erased after .*20\d\d/.test(text)) throw new Error(`no purge date shown: ${text}`);
    await shoot(page, 'en-deletion-scheduled');
    // Signing in meanwhile is refused, and says how to cancel.
    await open(page, '/signin');
    await page.getByLabel('Username or email').fill('walker');
    await page.getByLabel('Password', { exact: true }).fill('second long passphrase');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await status(page, 'open the cancel link');
    await open(page, await mailedLink('walker@example.org', '/cancel-deletion', mails));
    tokenGone(page);
    await accessible(page, '/cancel-deletion');
    await page.getByRole('button', { name: 'Keep my account' }).click();
    await status(page, 'The deletion is cancelled');
  });

  await step('sign in again', async () => {
    await signIn(page, 'walker@example.org', 'second long passphrase');
  });

  await step('end the other sessions', async () => {
    const other = await newPage('en-GB');
    await signIn(other, 'walker', 'second long passphrase');
    await open(page, '/profile');
    await page.getByRole('button', { name: 'Sign out everywhere else' }).click();
    await status(page, 'Sessions ended: 1');
    await other.close();
  });

  await step('forgot password, through its link', async () => {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByRole('link', { name: 'Sign in' }).first().waitFor();
    await view(page, '/forgot-password', 'en-forgot-password');
    await page.getByLabel('Email address', { exact: true }).fill('walker@example.org');
    await page.getByRole('button', { name: 'Send the link' }).click();
    await status(page, 'a link is on its way');
    await open(page, await mailedLink('walker@example.org', '/reset-password'));
    tokenGone(page);
    await accessible(page, '/reset-password');
    await page.getByLabel('New password').fill('third long passphrase');
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await status(page, 'Your password is changed');
    await signIn(page, 'walker', 'third long passphrase');
  });

  await step('a major policy change: banner, review, new purpose off, accept', async () => {
    await publishMajorPolicy();
    await open(page, '/');
    await page.getByText('The privacy policy has changed').waitFor();
    await page.getByRole('link', { name: 'Review the changes' }).click();
    await page.getByRole('heading', { name: 'Review policy version 2027-01-01' }).waitFor();
    await page.getByText('Adds suggestions of friends who are near you.').waitFor();
    if (await page.locator('#purpose-nearby_friends').isChecked()) throw new Error('a new purpose started on');
    await accessible(page, '/settings/privacy with a review');
    await shoot(page, 'en-policy-review');
    await page.getByRole('button', { name: 'Accept version 2027-01-01' }).click();
    await status(page, 'You accepted version 2027-01-01');
    if (await page.getByText('The privacy policy has changed').count()) throw new Error('the banner stayed');
  });

  await step('file a ticket signed in, read its thread, reply', async () => {
    await open(page, '/support');
    if (await page.getByText('support replies').count()) throw new Error('a ticket asked for a purpose');
    await page.getByLabel('Subject').fill('Export question');
    await page.getByLabel('Message').fill('Does the export include my sessions?');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await status(page, 'Your reference is');
    const thread = page.locator('details', { hasText: 'Export question' });
    await thread.locator('summary').click();
    await thread.getByText('Does the export include my sessions?').waitFor();
    await thread.getByLabel('Your reply').fill('And my consent history?');
    await thread.getByRole('button', { name: 'Send reply' }).click();
    await page.locator('details[open] .message', { hasText: 'And my consent history?' }).waitFor();
    await accessible(page, '/support signed in');
  });

  await step('a guardian refuses through their link', async () => {
    const minor = await newPage('en-GB');
    await open(minor, '/signup');
    await minor.getByLabel('Username', { exact: true }).fill('young_walker');
    await minor.getByLabel('Email address', { exact: true }).fill('young.walker@example.org');
    await minor.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await minor.getByLabel('Under 18').check();
    await minor.getByLabel("Your parent's or guardian's email address").fill('guardian@example.org');
    await minor.getByRole('button', { name: /and sign up/ }).click();
    await status(minor, 'Check your mail');
    await open(minor, await mailedLink('guardian@example.org', '/guardian-consent'));
    tokenGone(minor);
    await minor.getByText('"young_walker"').waitFor();
    await accessible(minor, '/guardian-consent');
    await shoot(minor, 'en-guardian-consent');
    await minor.getByRole('button', { name: 'I refuse' }).click();
    await status(minor, 'You refused');
    await minor.close();
  });

  await step('a guest files a ticket, and is told when no reply is possible', async () => {
    const guest = await newPage('en-GB');
    await view(guest, '/support', 'en-support-guest');
    await guest.getByLabel('Subject').fill('A question about my data');
    await guest.getByLabel('Message').fill('Which data do you keep about guests?');
    await guest.getByRole('button', { name: 'Send', exact: true }).click();
    await status(guest, 'We cannot reply');
    await guest.getByLabel('Subject').fill('Please answer me');
    await guest.getByLabel('Message').fill('Here is my address.');
    await guest.getByLabel('Your email address (optional)').fill('guest@example.org');
    await guest.getByRole('button', { name: 'Send', exact: true }).click();
    await status(guest, 'Your reference is');
    await guest.close();
  });

  await step('public pages: the policy with its versions, announcements', async () => {
    await view(page, '/privacy', 'en-policy');
    await view(page, '/announcements', 'en-announcements');
    await view(page, '/support', 'en-support');
  });

  await step('the same views in Chinese', async () => {
    const zh = await newPage('zh-CN');
    await view(zh, '/signup', 'zh-CN-signup');
    await zh.locator('input[name="username"]').fill('行者_zh');
    await zh.locator('input[name="email"]').fill('walker.zh@example.org');
    await zh.locator('input[name="password"]').fill(PASSWORD);
    await zh.locator('input[name="grantPurposes"][value="product_updates"]').check();
    await zh.getByRole('button', { name: /并注册/ }).click();
    await status(zh, '请查收邮件');
    await open(zh, await mailedLink('walker.zh@example.org', '/verify-email'));
    await zh.getByText('你的邮箱已验证。').waitFor();
    await open(zh, '/signin');
    await zh.locator('input[name="login"]').fill('walker.zh@example.org');
    await zh.locator('input[name="password"]').fill(PASSWORD);
    await zh.getByRole('button', { name: '登录', exact: true }).click();
    await zh.getByRole('heading', { level: 1, name: /你好/ }).waitFor();
    await accessible(zh, '/ zh-CN');
    await shoot(zh, 'zh-CN-home');
    await view(zh, '/settings/privacy', 'zh-CN-privacy-centre');
    await view(zh, '/my-data', 'zh-CN-my-data');
    await view(zh, '/profile', 'zh-CN-profile');
    await view(zh, '/delete-account', 'zh-CN-delete-account');
    await view(zh, '/support', 'zh-CN-support');
    await view(zh, '/privacy', 'zh-CN-policy');
    await zh.close();
  });
} finally {
  await browser.close();
  server.kill('SIGTERM');
  smtp.close();
  rmSync(work, { recursive: true, force: true });
}

await step('every request stayed on loopback', async () => {
  if (offLoopback.length) throw new Error(offLoopback.join('\n'));
});
await step('no page logged an error (CSP violations included)', async () => {
  if (pageErrors.length) throw new Error(pageErrors.join('\n'));
});

console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
