// Drives the playground in headless Chromium against a running server (dev auth; the database
// may be empty), with every origin but the server's blocked:
//   node test/browser.mjs <serverUrl> <screenshotPath>
// 1. creates a user through the API (as an administrator) and puts its id in the headers editor;
// 2. runs the default query's `Charge` (scenario 1), then `Me`, with the execute button, and
//    reads the balance 50000 in the result pane;
// 3. in a new tab, runs `subscription { rankingChanged { ... } }` with Ctrl-Enter, reads its
//    first payload in the result pane and checks that the socket's connection_init carried the
//    headers; then goes back to the first tab.
// 4. checks that Monaco's workers (editor, JSON, GraphQL) run, loaded from the server.
// Saves a screenshot to <screenshotPath> at the end (scenario 1 and its result) and on failure;
// exits 1 on any failure, including a request to another origin or an error in the page.
import { chromium } from 'playwright-core';

const [serverArg, screenshotPath] = process.argv.slice(2);
if (!serverArg || !screenshotPath) {
  console.error('usage: node test/browser.mjs <serverUrl> <screenshotPath>');
  process.exit(2);
}
const server = new URL(serverArg);
// Generous: CI runs this beside other tests on two busy cores.
const LIMIT_MS = 100_000;
const started = Date.now();

let browser;
let page;
const blocked = [];
const pageErrors = [];

function step(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
}

async function fail(message) {
  console.error(`FAIL: ${message}`);
  if (page) {
    await page.screenshot({ path: screenshotPath }).catch(() => {});
    console.error(`screenshot: ${screenshotPath}`);
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}

const watchdog = setTimeout(
  () => fail(`not done after ${LIMIT_MS / 1000}s`),
  LIMIT_MS,
);

/** POSTs an operation as an administrator; returns `data` or throws. */
async function adminPost(query) {
  const response = await fetch(new URL('/graphql', server), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-role': 'ADMIN' },
    body: JSON.stringify({ query }),
  }).catch((error) => {
    throw new Error(`no server at ${server.origin}: ${error.cause?.message ?? error.message}`);
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    throw new Error(`${response.status} ${JSON.stringify(body)}`);
  }
  return body.data;
}

/** The text that Monaco shows in `editor` (its rendered lines, spaces normalised). */
async function shownText(editor) {
  const text = await editor.locator('.view-lines').innerText();
  return text.replace(/\u00a0/g, ' ');
}

/** Replaces the content of a Monaco editor through the keyboard, as a person pasting would. */
async function replaceContent(editor, text) {
  await editor.locator('.view-lines').click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

/** Waits until the result pane shows `pattern`; fails with what it shows otherwise. */
async function waitForResult(pattern, what) {
  const result = page.locator('section.result-window');
  const deadline = Date.now() + 30_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await shownText(result).catch(() => '');
    if (pattern.test(text.replace(/\s+/g, ' '))) return text;
    await page.waitForTimeout(100);
  }
  return fail(`${what}: the result pane does not show ${pattern}; it shows:\n${text}`);
}

try {
  const created = await adminPost(
    'mutation { createUser(input: { name: "Playground test" }) { user { id } } }',
  );
  const userId = created.createUser.user.id;
  step(`created user ${userId}`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // Every request of the page and its workers: the server's origin only.
  await context.route('**', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === server.origin) return route.continue();
    blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
  });
  const sockets = [];
  page.on('websocket', (socket) => {
    const frames = [];
    sockets.push({ url: socket.url(), frames });
    socket.on('framesent', (frame) => frames.push(String(frame.payload)));
  });

  const response = await page.goto(new URL('/graphql', server).href);
  if (response.status() !== 200) await fail(`GET /graphql: ${response.status()}`);
  const queryEditor = page.locator('.graphiql-query-editor .monaco-editor');
  await queryEditor.waitFor({ timeout: 30_000 });
  await page.locator('section.result-window .monaco-editor').waitFor();
  step('GraphiQL is up');

  // The server's settings: scenario 1 in the query editor, dev headers in the headers editor.
  const shownQuery = await shownText(queryEditor);
  if (!shownQuery.includes('mutation Charge')) {
    await fail(`the query editor does not show scenario 1:\n${shownQuery}`);
  }
  await page.locator('.graphiql-editor-tools button', { hasText: 'Headers' }).click();
  const headersEditor = page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden)');
  const shownHeaders = await shownText(headersEditor);
  if (!shownHeaders.includes('"x-user-id": "1"')) {
    await fail(`the headers editor does not show the dev headers:\n${shownHeaders}`);
  }
  await replaceContent(headersEditor, `{"x-user-id": "${userId}"}`);
  step(`headers editor set to user ${userId}`);

  // Scenario 1: Charge, then Me, chosen from the execute button's menu.
  for (const [operation, pattern] of [
    ['Charge', /"chargeBalance": \{ "balance": 50000,/],
    ['Me', /"me": \{ "id": "\d+", "name": "Playground test", "balance": 50000 \}/],
  ]) {
    await page.locator('button.graphiql-execute-button').click();
    await page.getByRole('menuitem', { name: operation, exact: true }).click();
    await waitForResult(pattern, operation);
    step(`${operation}: the result pane shows the balance 50000`);
  }

  // A subscription from the UI, in a new tab, run with Ctrl-Enter: its first payload (the
  // snapshot), over a socket whose connection_init carries the headers editor's values.
  await page.locator('button.graphiql-tab-add').click();
  await page.getByRole('tab').nth(1).waitFor();
  await page.locator('.graphiql-editor-tools button', { hasText: 'Headers' }).click();
  await replaceContent(headersEditor, `{"x-user-id": "${userId}"}`);
  // One line: Monaco's auto-indent would add braces after a typed newline.
  await replaceContent(
    queryEditor,
    'subscription Ranking { rankingChanged(days: 3, limit: 5) ' +
      '{ changes { rank } topSellers { days entries { rank } } } }',
  );
  // GraphiQL reads the operation 100 ms after an edit; the tab takes its name then.
  await page.getByRole('tab', { name: 'Ranking' }).waitFor({ timeout: 20_000 });
  await page.keyboard.press('ControlOrMeta+Enter');
  await waitForResult(
    /"rankingChanged": \{ "changes": \[\], "topSellers": \{ "days": 3,/,
    'Ranking',
  );
  const init = sockets
    .filter((socket) => new URL(socket.url).host === server.host)
    .flatMap((socket) => socket.frames)
    .map((frame) => JSON.parse(frame))
    .find((message) => message.type === 'connection_init');
  if (init?.payload?.['x-user-id'] !== userId) {
    await fail(`connection_init did not carry the headers: ${JSON.stringify(init)}`);
  }
  step('Ranking: the first payload is shown; connection_init carried the headers');
  // Stop it (the same button), and back to scenario 1 for the screenshot.
  await page.locator('button.graphiql-execute-button').click();
  await page.getByRole('tab').first().click();
  await waitForResult(/"balance": 50000/, 'back in the first tab');

  // Monaco's workers run, from the server (the editor's, JSON's and GraphQL's); Monaco starts
  // each when it first needs it, so a busy machine may take a moment.
  for (const name of ['editor.worker-', 'json.worker-', 'graphql.worker-']) {
    const deadline = Date.now() + 20_000;
    const fromServer = () =>
      page
        .workers()
        .map((worker) => new URL(worker.url()))
        .find((url) => url.pathname.startsWith(`/graphql/assets/${name}`));
    while (!fromServer() && Date.now() < deadline) await page.waitForTimeout(100);
    if (fromServer()?.origin !== server.origin) {
      const workers = page.workers().map((worker) => worker.url());
      await fail(`no ${name}* worker from the server: ${workers.join(', ')}`);
    }
  }

  if (blocked.length) await fail(`requests to other origins:\n${blocked.join('\n')}`);
  if (pageErrors.length) await fail(`errors in the page:\n${pageErrors.join('\n')}`);
  await page.screenshot({ path: screenshotPath });
  step(`passed; screenshot: ${screenshotPath}`);
  clearTimeout(watchdog);
  await browser.close();
} catch (error) {
  await fail(error.message || String(error));
}
