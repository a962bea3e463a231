import './style.css';
import type { Client, CombinedError } from '@urql/core';
import { makeClient, type WsState } from './client';
import { readSettings } from './config';
import type {
  RankingChangedSubscription,
  UserErrorFieldsFragment,
} from './gql/graphql';
import {
  ChargeBalanceMutation,
  MeQuery,
  PlaceOrderMutation,
  ProductsQuery,
  RankingChangedSubscription as RankingChanged,
  StockChangedSubscription,
} from './operations';

// ---------------------------------------------------------------- small DOM helpers

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
};

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { dataset?: Record<string, string> } = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const { dataset, ...rest } = props;
  const el = Object.assign(document.createElement(tag), rest);
  if (dataset) Object.assign(el.dataset, dataset);
  for (const child of children) if (child != null) el.append(child);
  return el;
}

const wonFormat = new Intl.NumberFormat('en-US');
const won = (amount: number) => `${wonFormat.format(amount)} won`;

const newIdempotencyKey = () =>
  globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;

// ---------------------------------------------------------------- error display

/** A payload's `userErrors`: expected business outcomes, one line each with its details. */
function userErrorList(errors: readonly UserErrorFieldsFragment[]): HTMLElement {
  return h(
    'div',
    { className: 'errors user-errors' },
    h('ul', {}, ...errors.map((e) => h('li', { dataset: { code: e.code } }, ...userErrorLine(e)))),
  );
}

function userErrorLine(e: UserErrorFieldsFragment): (Node | string)[] {
  const parts: (Node | string)[] = [h('code', {}, e.code), ' ', e.message];
  if (e.field?.length) parts.push(' ', h('span', { className: 'detail' }, `(field: ${e.field.join('.')})`));
  let detail: string | undefined;
  switch (e.__typename) {
    case 'OutOfStockError': {
      const alts = e.alternatives.map((p) => `${p.name} (#${p.id}, stock ${p.stock})`).join(', ');
      detail = `product #${e.productId}: requested ${e.requested}, available ${e.available}` +
        (alts ? `; try instead: ${alts}` : '');
      break;
    }
    case 'InsufficientBalanceError':
      detail = `balance ${won(e.balance)}, required ${won(e.required)}`;
      break;
    case 'BalanceLimitError':
      detail = `balance ${won(e.balance)}, at most ${won(e.maxBalance)}`;
      break;
  }
  if (detail) parts.push(h('div', { className: 'detail' }, detail));
  return parts;
}

/** Everything that is not a business outcome: transport failures and top-level GraphQL errors. */
function requestErrorBox(error: CombinedError, what: string): HTMLElement {
  const items: HTMLElement[] = [];
  if (error.networkError) {
    items.push(h('li', { dataset: { code: 'NETWORK' } }, h('code', {}, 'NETWORK'), ' ',
      `${what}: ${describeNetworkError(error.networkError)}`));
  }
  for (const e of error.graphQLErrors) {
    const code = String(e.extensions?.code ?? 'ERROR');
    const retry = e.extensions?.retryAfterSeconds;
    items.push(h('li', { dataset: { code } }, h('code', {}, code), ' ', `${what}: ${e.message}`,
      retry != null ? h('span', { className: 'detail' }, ` (retry after ${retry} s)`) : null));
  }
  if (!items.length) items.push(h('li', {}, `${what}: ${error.message}`));
  return h('div', { className: 'errors request-errors' }, h('ul', {}, ...items));
}

/** A failed fetch, or (for subscriptions) the WebSocket's close event. */
function describeNetworkError(error: unknown): string {
  const close = error as Partial<CloseEvent>;
  if (typeof close.code === 'number') {
    const why = close.code === 4403 ? ': the server refused these credentials' : '';
    return `the WebSocket to ${settings.wsUrl} closed with ${close.code} ${close.reason ?? ''}`.trim() + why;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `cannot reach ${settings.httpUrl} (${message})`;
}

function show(container: HTMLElement, ...content: (Node | string)[]) {
  container.replaceChildren(...content);
}

/** Adds one outcome on top of a container's recent ones (the last three are kept). */
function logResult(container: HTMLElement, ...content: (Node | string)[]) {
  container.prepend(h('div', { className: 'entry' }, ...content));
  while (container.children.length > 3) container.lastElementChild!.remove();
}

// ---------------------------------------------------------------- the app

let settings: ReturnType<typeof readSettings>;
try {
  settings = readSettings();
} catch (err) {
  const fatal = $('fatal');
  fatal.hidden = false;
  fatal.textContent = String(err instanceof Error ? err.message : err);
  throw err;
}

$('server-url').textContent = settings.httpUrl;
$('user-id').textContent = settings.userId;

function setWsState(state: WsState, detail?: string) {
  const el = $('ws-status');
  el.className = `status ${state}`;
  el.textContent = detail ? `${state} (${detail})` : state;
}

const { client } = makeClient(settings, setWsState);

// ---- balance

async function loadMe(c: Client) {
  const result = await c.query(MeQuery, {}).toPromise();
  if (result.error || !result.data) {
    $('balance').textContent = '—';
    show($('me-errors'), result.error ? requestErrorBox(result.error, 'me') : 'no data');
    return;
  }
  show($('me-errors'));
  const { me } = result.data;
  $('balance').textContent = won(me.balance);
  $('user-name').textContent = `${me.name} (#${me.id}, ${me.role})`;
}

$('charge-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $<HTMLButtonElement>('charge-button');
  const out = $('charge-result');
  const amount = Number($<HTMLInputElement>('charge-amount').value);
  if (!Number.isSafeInteger(amount)) {
    show(out, h('div', { className: 'errors' }, 'Enter a whole number of won.'));
    return;
  }
  button.disabled = true;
  try {
    const result = await client
      .mutation(ChargeBalanceMutation, { input: { amount, idempotencyKey: newIdempotencyKey() } })
      .toPromise();
    if (result.error || !result.data) {
      show(out, result.error ? requestErrorBox(result.error, 'chargeBalance') : 'no data');
      return;
    }
    const payload = result.data.chargeBalance;
    if (payload.userErrors.length) {
      show(out, userErrorList(payload.userErrors));
      return;
    }
    if (payload.viewer) $('balance').textContent = won(payload.viewer.balance);
    show(out, h('div', { className: 'ok' }, `Charged ${won(amount)}: balance ${won(payload.balance ?? 0)}` +
      (payload.entry ? ` (ledger entry #${payload.entry.id}, ${payload.entry.kind})` : '')));
  } finally {
    button.disabled = false;
  }
});

// ---- products, with live stock

function stockCell(productId: string): HTMLElement | null {
  return document.querySelector<HTMLElement>(`#product-rows tr[data-product-id="${productId}"] .stock`);
}

function setStock(productId: string, stock: number) {
  const cell = stockCell(productId);
  if (!cell || cell.textContent === String(stock)) return;
  cell.textContent = String(stock);
  cell.classList.toggle('out', stock === 0);
  const row = cell.closest('tr')!;
  row.classList.remove('flash');
  void row.offsetWidth; // restart the animation
  row.classList.add('flash');
}

async function loadProducts() {
  const result = await client.query(ProductsQuery, { first: 50 }).toPromise();
  if (result.error || !result.data) {
    show($('products-errors'), result.error ? requestErrorBox(result.error, 'products') : 'no data');
    return;
  }
  show($('products-errors'));
  const { nodes, totalCount, pageInfo } = result.data.products;
  $('products-count').textContent = pageInfo.hasNextPage
    ? `first ${nodes.length} of ${totalCount}`
    : `${totalCount}`;
  $('product-rows').replaceChildren(
    ...nodes.map((p) => {
      const qty = h('input', { type: 'number', value: '1', min: '1', max: '1000', className: 'qty' });
      const button = h('button', { type: 'button', className: 'order' }, 'Order');
      button.addEventListener('click', () => placeOrder(p.id, p.name, Number(qty.value), button));
      return h('tr', { dataset: { productId: p.id } },
        h('td', {}, p.id),
        h('td', { className: 'name' }, p.name),
        h('td', {}, p.category),
        h('td', { className: 'num price' }, won(p.price)),
        h('td', { className: `num stock${p.stock === 0 ? ' out' : ''}` }, String(p.stock)),
        h('td', {}, qty, ' ', button),
      );
    }),
  );
  if (!nodes.length) $('product-rows').append(h('tr', {}, h('td', { colSpan: 6 }, 'No products yet.')));
}

client.subscription(StockChangedSubscription, {}).subscribe((result) => {
  if (result.error) {
    show($('stock-errors'), requestErrorBox(result.error, 'stockChanged'));
    return;
  }
  const update = result.data?.stockChanged;
  if (update?.product) setStock(update.product.id, update.stock);
});

// ---- placing an order

async function placeOrder(productId: string, name: string, quantity: number, button: HTMLButtonElement) {
  const out = $('order-result');
  button.disabled = true;
  try {
    const result = await client
      .mutation(PlaceOrderMutation, {
        input: { items: [{ productId, quantity }], idempotencyKey: newIdempotencyKey() },
      })
      .toPromise();
    if (result.error || !result.data) {
      logResult(out, result.error ? requestErrorBox(result.error, 'placeOrder') : 'no data');
      return;
    }
    const { order, viewer, userErrors } = result.data.placeOrder;
    // the payload carries the balance and the stock it changed: nothing is read again
    if (viewer) $('balance').textContent = won(viewer.balance);
    if (userErrors.length || !order) {
      logResult(out, h('p', {}, `Order of ${quantity} × ${name} refused:`), userErrorList(userErrors));
      return;
    }
    for (const item of order.items) if (item.product) setStock(item.product.id, item.product.stock);
    const lines = order.items.map((i) => `${i.quantity} × ${i.product?.name ?? '?'} at ${won(i.unitPrice)}`);
    logResult(out, h('div', { className: 'ok', dataset: { orderId: order.id, status: order.status } },
      `Order #${order.id} ${order.status}: ${lines.join(', ')}; total ${won(order.total)}` +
      (order.discount ? ` (discount ${won(order.discount)})` : '')));
  } finally {
    button.disabled = false;
  }
}

// ---- the live ranking: fed only by the rankingChanged subscription, never by a query

let rankingUpdates = 0;

function renderRanking(update: RankingChangedSubscription['rankingChanged']) {
  rankingUpdates += 1;
  const { topSellers, changes } = update;
  const moves = new Map(changes.filter((c) => c.product).map((c) => [c.product!.id, c]));
  const meta = $('ranking-meta');
  meta.dataset.updates = String(rankingUpdates);
  meta.textContent = `${topSellers.from} to ${topSellers.to} · update #${rankingUpdates} ` +
    `at ${new Date().toLocaleTimeString()} (computed ${new Date(topSellers.computedAt).toLocaleTimeString()})`;

  const rows = topSellers.entries.map((e) => {
    const change = e.product ? moves.get(e.product.id) : undefined;
    const movement = change?.movement ?? '';
    const label = movement === 'UP' ? `▲ from ${change?.previousRank}`
      : movement === 'DOWN' ? `▼ from ${change?.previousRank}`
      : movement === 'NEW' ? 'NEW' : movement === 'SAME' ? '=' : '';
    return h('tr', { dataset: { productId: e.product?.id ?? '', rank: String(e.rank), movement },
        className: movement && movement !== 'SAME' ? 'flash' : '' },
      h('td', {}, String(e.rank)),
      h('td', { className: 'name' }, e.product?.name ?? '(deleted product)'),
      h('td', { className: 'num quantity' }, String(e.quantity)),
      h('td', { className: 'num' }, won(e.revenue)),
      h('td', { className: `move-${movement}` }, label));
  });
  if (!rows.length) rows.push(h('tr', {}, h('td', { colSpan: 5 }, 'No sales in this period yet.')));
  $('ranking-rows').replaceChildren(...rows);

  const dropped = changes.filter((c) => c.movement === 'DROPPED');
  $('ranking-dropped').textContent = dropped.length
    ? `Dropped out: ${dropped.map((c) => `${c.product?.name ?? '?'} (was #${c.previousRank})`).join(', ')}`
    : '';
}

client.subscription(RankingChanged, { days: 3, limit: 5 }).subscribe((result) => {
  if (result.error) {
    show($('ranking-errors'), requestErrorBox(result.error, 'rankingChanged'));
    return;
  }
  show($('ranking-errors'));
  if (result.data) renderRanking(result.data.rankingChanged);
});

// ---- start

void loadMe(client);
void loadProducts();
