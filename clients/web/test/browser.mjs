// Browser test of the web client against a running server (dev auth).
//
//   node test/browser.mjs <serverUrl> <screenshotPath>
//   e.g. node test/browser.mjs http://127.0.0.1:18123 /tmp/web.png
//
// The server runs in trusted mode (TRUSTED_DOCUMENTS: the app's src/gql/persisted-documents.json,
// with TRUSTED_DOCUMENTS_ADMINS_FREE): the page sends its documents by hash only
// (?documents=trusted), and this script's own setup, sent with ADMIN headers, may run any.
// Sets up its own user and products through the API (admin headers), builds the app when
// dist/ is missing or older than its sources, serves dist/ on a free port, and drives headless
// Chromium (playwright-core; CHROMIUM=/path overrides /usr/bin/chromium) through the UI:
// charge (a refused one first), products with stock, an order refused for stock, an order placed,
// the new balance and stock (from the mutations' payloads: nothing is read again), and the live
// ranking pushed by the rankingChanged subscription (never re-fetched by a query). Exits 1 with a
// message on any failure; the screenshot is taken at the end and on failure.

import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const OVERALL_TIMEOUT_MS = 50_000;
const STEP_TIMEOUT_MS = 10_000;

const [serverArg, screenshotArg] = process.argv.slice(2);
if (!serverArg || !screenshotArg) {
  console.error('usage: node test/browser.mjs <serverUrl> <screenshotPath>');
  process.exit(2);
}
const server = new URL(serverArg);
const graphqlUrl = new URL(server.pathname.length > 1 ? server.pathname : '/graphql', server).href;
const screenshotPath = resolve(process.cwd(), screenshotArg);

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

class TestFailure extends Error {}
const fail = (msg) => {
  throw new TestFailure(msg);
};

let browser;
let page;
let staticServer;

async function finish(code, message) {
  if (page) {
    try {
      mkdirSync(dirname(screenshotPath), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: true, timeout: 5000 });
      log(`screenshot: ${screenshotPath}`);
    } catch (err) {
      console.error(`(could not take the screenshot: ${err.message})`);
    }
  } else {
    console.error('(no screenshot: the failure came before the browser opened the page)');
  }
  await browser?.close().catch(() => {});
  staticServer?.close();
  if (code === 0) log(`PASS (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  else console.error(`FAIL: ${message}`);
  process.exit(code);
}

const watchdog = setTimeout(
  () => finish(1, `the test took longer than ${OVERALL_TIMEOUT_MS / 1000} s`),
  OVERALL_TIMEOUT_MS,
);
watchdog.unref();

// ---------------------------------------------------------------- the API, as an administrator

async function api(query, variables = {}, headers = { 'x-role': 'ADMIN' }) {
  let response;
  try {
    response = await fetch(graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(5000),
    });
  } catch (err) {
    fail(`the server is not reachable at ${graphqlUrl}: ${err.cause?.message ?? err.message}`);
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`${graphqlUrl} answered HTTP ${response.status} with something that is not JSON: ${text.slice(0, 200)}`);
  }
  if (body.errors?.length) fail(`API error: ${JSON.stringify(body.errors)}`);
  return body.data;
}

function payload(data, field) {
  const p = data[field];
  if (p.userErrors?.length) fail(`${field} refused: ${JSON.stringify(p.userErrors)}`);
  return p;
}

async function setUp() {
  try {
    const health = await fetch(new URL('/healthz', server), { signal: AbortSignal.timeout(3000) });
    if (!health.ok) fail(`${new URL('/healthz', server)} answered HTTP ${health.status}`);
  } catch (err) {
    if (err instanceof TestFailure) throw err;
    fail(`the server is not reachable at ${server.origin}: ${err.cause?.message ?? err.message}`);
  }
  const tag = `${Date.now().toString(36)}`;
  const { createUser } = await api(
    'mutation($name: String!) { createUser(input: { name: $name }) { user { id name } userErrors { code message } } }',
    { name: `Web tester ${tag}` },
  );
  const user = payload({ createUser }, 'createUser').user;
  const other = payload(
    await api(
      'mutation($name: String!) { createUser(input: { name: $name }) { user { id } userErrors { code message } } }',
      { name: `Other shopper ${tag}` },
    ),
    'createUser',
  ).user;

  // On a fresh database the ranking is empty and 2 units put a product first; if the server
  // already has sales, order one more unit than the current best seller so ours comes first.
  const { topSellers } = await api('{ topSellers(days: 3, limit: 5) { entries { quantity } } }');
  const best = topSellers.entries[0]?.quantity ?? 0;
  const quantity = Math.max(2, best + 1);
  if (quantity > 1000) fail(`the best seller already sold ${best} units: run the test on a fresh database`);

  const category = `web-test-${tag}`;
  const specs = [
    { name: `Desk lamp ${tag}`, price: 1200, stock: quantity + 5 },
    { name: `Notebook ${tag}`, price: 3500, stock: quantity + 20 },
    { name: `Pencil case ${tag}`, price: 4800, stock: 0 },
  ];
  const products = [];
  for (const spec of specs) {
    const data = await api(
      `mutation($input: CreateProductInput!) {
        createProduct(input: $input) { product { id name price stock } userErrors { code message field } }
      }`,
      { input: { ...spec, category, description: 'made by test/browser.mjs' } },
    );
    products.push(payload(data, 'createProduct').product);
  }
  const charge = quantity * specs[0].price + 10_000;
  // The other shopper's money, for an order placed outside the page (live stock and ranking).
  payload(
    await api(
      'mutation($amount: Won!) { chargeBalance(input: { amount: $amount }) { balance userErrors { code message } } }',
      { amount: (quantity + 1) * specs[1].price },
      { 'x-user-id': other.id, 'x-role': 'ADMIN' },
    ),
    'chargeBalance',
  );
  log(`set up users #${user.id} #${other.id}, products ${products.map((p) => `#${p.id}`).join(' ')}; will order ${quantity}`);
  return { user, other, product: products[0], notebook: products[1], quantity, charge };
}

// ---------------------------------------------------------------- build and serve dist/

function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) {
    if (path === join(ROOT, 'src') && entry === 'gql') continue; // written by the build itself
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

function buildIfStale() {
  const inputs = ['src', 'index.html', 'codegen.ts', 'vite.config.ts', 'tsconfig.json', 'package-lock.json', '../../schema.graphql']
    .map((p) => join(ROOT, p))
    .filter(existsSync);
  const built = existsSync(join(DIST, 'index.html')) ? statSync(join(DIST, 'index.html')).mtimeMs : 0;
  if (built > Math.max(...inputs.map(newestMtime))) {
    log('dist/ is up to date');
    return;
  }
  log('building the app (npm run build)…');
  const run = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (run.status !== 0) fail(`npm run build failed:\n${run.stdout}\n${run.stderr}`);
  log('built');
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

function serveDist() {
  return new Promise((resolveServer, reject) => {
    const srv = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      let file = normalize(join(DIST, path));
      if (!file.startsWith(DIST + sep) && file !== DIST) {
        res.writeHead(403).end();
        return;
      }
      if (!existsSync(file) || statSync(file).isDirectory()) file = join(DIST, 'index.html');
      res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' });
      createReadStream(file).pipe(res);
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => resolveServer(srv));
  });
}

// ---------------------------------------------------------------- the UI

async function step(description, fn) {
  try {
    await fn();
    log(`ok: ${description}`);
  } catch (err) {
    if (err instanceof TestFailure) throw err;
    fail(`${description}: ${err.message.split('\n')[0]}`);
  }
}

const wonText = (n) => `${new Intl.NumberFormat('en-US').format(n)} won`;

async function textOf(selector) {
  return (await page.locator(selector).first().textContent())?.trim();
}

async function waitForText(selector, expected, what) {
  try {
    await page.locator(selector).first().filter({ hasText: expected }).waitFor({ timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`${what}: expected ${JSON.stringify(expected)} in ${selector}, saw ${JSON.stringify(await textOf(selector).catch(() => null))}`);
  }
}

async function main() {
  const { user, other, product, notebook, quantity, charge } = await setUp();
  buildIfStale();
  staticServer = await serveDist();
  const appUrl = `http://127.0.0.1:${staticServer.address().port}/?server=${encodeURIComponent(server.origin)}&user=${user.id}&documents=trusted`;

  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  try {
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'], timeout: STEP_TIMEOUT_MS });
  } catch (err) {
    fail(`could not start Chromium at ${executablePath} (set CHROMIUM=/path/to/chromium): ${err.message.split('\n')[0]}`);
  }
  page = await browser.newPage({ viewport: { width: 1200, height: 900 } });

  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && pageErrors.push(msg.text()));

  // Every GraphQL request over HTTP, and every message pushed over the WebSocket.
  const operationName = (body) => {
    try {
      return JSON.parse(body).operationName;
    } catch {
      return undefined;
    }
  };
  const httpOperations = [];
  page.on('request', (req) => {
    if (req.url().startsWith(graphqlUrl) && req.method() === 'POST') {
      httpOperations.push({ at: Date.now(), body: req.postData() ?? '' });
    }
  });
  const wsMessages = [];
  page.on('websocket', (ws) => {
    ws.on('framereceived', ({ payload }) => {
      try {
        wsMessages.push({ at: Date.now(), message: JSON.parse(String(payload)) });
      } catch {
        /* not JSON: ignore */
      }
    });
  });

  log(`opening ${appUrl}`);
  await page.goto(appUrl, { timeout: STEP_TIMEOUT_MS });

  await step('the page shows the user and a zero balance', async () => {
    await waitForText('#balance', wonText(0), 'balance before charging');
    await waitForText('#user-name', `#${user.id}`, 'user name');
  });
  await step('the live updates connect and the ranking snapshot arrives', async () => {
    await waitForText('#ws-status', 'connected', 'WebSocket status');
    await page.locator('#ranking-meta:not([data-updates="0"])').waitFor({ timeout: STEP_TIMEOUT_MS });
  });
  await step('the product list shows our product with its stock', async () => {
    const row = page.locator(`#product-rows tr[data-product-id="${product.id}"]`);
    await row.waitFor({ timeout: STEP_TIMEOUT_MS });
    const stock = (await row.locator('.stock').textContent())?.trim();
    if (stock !== String(product.stock)) fail(`stock of ${product.name}: expected ${product.stock}, saw ${stock}`);
    await waitForText(`#product-rows tr[data-product-id="${product.id}"] .price`, wonText(product.price), 'price');
  });

  await step('a refused charge shows its userErrors code and message', async () => {
    await page.fill('#charge-amount', '0');
    await page.click('#charge-button');
    await page.locator('#charge-result .user-errors li[data-code="INVALID_INPUT"]').waitFor({ timeout: STEP_TIMEOUT_MS });
    await waitForText('#balance', wonText(0), 'balance after a refused charge');
  });
  const charged = Date.now();
  await step(`charging ${wonText(charge)} shows the new balance`, async () => {
    await page.fill('#charge-amount', String(charge));
    await page.click('#charge-button');
    await waitForText('#charge-result .ok', 'Charged', 'charge result');
    await waitForText('#balance', wonText(charge), 'balance after charging');
  });

  const row = page.locator(`#product-rows tr[data-product-id="${product.id}"]`);
  await step('an order over the stock is refused with OUT_OF_STOCK and its details', async () => {
    await row.locator('input.qty').fill(String(product.stock + 1));
    await row.locator('button.order').click();
    await page.locator('#order-result .user-errors li[data-code="OUT_OF_STOCK"]').waitFor({ timeout: STEP_TIMEOUT_MS });
    await waitForText('#order-result .user-errors', `available ${product.stock}`, 'OUT_OF_STOCK details');
  });

  const ordered = Date.now();
  const updatesBefore = Number(await page.locator('#ranking-meta').getAttribute('data-updates'));
  const total = quantity * product.price;
  await step(`placing an order of ${quantity} × ${product.name} completes`, async () => {
    await row.locator('input.qty').fill(String(quantity));
    await row.locator('button.order').click();
    await page.locator('#order-result .ok[data-status="COMPLETED"]').waitFor({ timeout: STEP_TIMEOUT_MS });
    await waitForText('#order-result .ok', wonText(total), 'order total');
  });
  await step('the balance and the stock are updated from the payload alone', async () => {
    await waitForText('#balance', wonText(charge - total), 'balance after the order');
    await waitForText(`#product-rows tr[data-product-id="${product.id}"] .stock`, String(product.stock - quantity), 'stock after the order');
    const mutations = ['ChargeBalance', 'PlaceOrder'];
    const reads = httpOperations.filter(({ at, body }) => at >= charged && !mutations.includes(operationName(body)));
    if (reads.length) fail(`the page read again after a mutation instead of using its payload: ${reads[0].body.slice(0, 200)}`);
    const withText = httpOperations.filter(({ body }) => body.includes('"query"'));
    if (withText.length) fail(`the page sent a document's text, not its hash: ${withText[0].body.slice(0, 200)}`);
  });
  await step('the ranking panel shows the product first, pushed by rankingChanged', async () => {
    const ranked = page.locator(`#ranking-rows tr[data-product-id="${product.id}"][data-rank="1"]`);
    try {
      await ranked.waitFor({ timeout: STEP_TIMEOUT_MS });
    } catch {
      fail(`the ranking panel never showed ${product.name} at #1; it shows: ${JSON.stringify(await textOf('#ranking-rows'))}`);
    }
    const movement = await ranked.getAttribute('data-movement');
    if (!['NEW', 'UP'].includes(movement)) fail(`expected movement NEW or UP for ${product.name}, saw ${JSON.stringify(movement)}`);
    const sold = (await ranked.locator('.quantity').textContent())?.trim();
    if (sold !== String(quantity)) fail(`ranking shows ${sold} units sold of ${product.name}, expected ${quantity}`);
    const updatesAfter = Number(await page.locator('#ranking-meta').getAttribute('data-updates'));
    if (!(updatesAfter > updatesBefore)) fail(`the ranking panel's update count did not grow (${updatesBefore} -> ${updatesAfter})`);

    const pushed = wsMessages.filter(({ at, message }) =>
      at >= ordered &&
      message.type === 'next' &&
      message.payload?.data?.rankingChanged?.topSellers?.entries?.some((e) => e.product?.id === product.id));
    if (!pushed.length) fail('no rankingChanged message with the product came over the WebSocket after the order');
    const refetched = httpOperations.filter(({ at, body }) => at >= ordered && /topSellers|rankingChanged/.test(body));
    if (refetched.length) fail(`the ranking was fetched over HTTP after the order: ${refetched[0].body.slice(0, 200)}`);
  });

  const elsewhere = Date.now();
  await step(`another shopper's order (${quantity + 1} × ${notebook.name}, through the API) shows live`, async () => {
    payload(
      await api(
        'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { status } userErrors { code message } } }',
        { input: { items: [{ productId: notebook.id, quantity: quantity + 1 }] } },
        { 'x-user-id': other.id, 'x-role': 'ADMIN' },
      ),
      'placeOrder',
    );
    await waitForText(`#product-rows tr[data-product-id="${notebook.id}"] .stock`, String(notebook.stock - quantity - 1),
      'stock pushed by stockChanged');
    const moved = page.locator(`#ranking-rows tr[data-product-id="${product.id}"][data-rank="2"][data-movement="DOWN"]`);
    try {
      await moved.waitFor({ timeout: STEP_TIMEOUT_MS });
    } catch {
      fail(`the ranking panel never showed ${product.name} moving DOWN to #2; it shows: ${JSON.stringify(await textOf('#ranking-rows'))}`);
    }
    await page.locator(`#ranking-rows tr[data-product-id="${notebook.id}"][data-rank="1"]`).waitFor({ timeout: STEP_TIMEOUT_MS });
    const refetched = httpOperations.filter(({ at }) => at >= elsewhere);
    if (refetched.length) fail(`the page sent HTTP requests instead of waiting for the subscriptions: ${refetched[0].body.slice(0, 200)}`);
  });

  await step('an order the balance cannot pay is refused with INSUFFICIENT_BALANCE, nothing changes', async () => {
    const nb = page.locator(`#product-rows tr[data-product-id="${notebook.id}"]`);
    await nb.locator('input.qty').fill('10');
    await nb.locator('button.order').click();
    await page.locator('#order-result .user-errors li[data-code="INSUFFICIENT_BALANCE"]').first().waitFor({ timeout: STEP_TIMEOUT_MS });
    await waitForText('#order-result .user-errors', `required ${wonText(10 * notebook.price)}`, 'INSUFFICIENT_BALANCE details');
    await waitForText('#balance', wonText(charge - total), 'balance after a refused order');
    await waitForText(`#product-rows tr[data-product-id="${notebook.id}"] .stock`, String(notebook.stock - quantity - 1),
      'stock after a refused order');
  });

  if (pageErrors.length) fail(`the page logged errors: ${pageErrors.join(' | ')}`);
}

main().then(
  () => finish(0),
  (err) => finish(1, err instanceof TestFailure ? err.message : err.stack ?? String(err)),
);
