-- 100,000 COMPLETED orders that satisfy every invariant of `commerce verify`, made by SQL in seconds:
-- psql -d DB -f loadtest/verify-100k.sql on a freshly migrated PostgreSQL database (commerce migrate).
-- 1,000 users, 100 products (each in 2,000 lines), 100,000 orders of 2 lines, paid from charged balances
INSERT INTO users (id, name, role, created_at) SELECT g, 'u'||g, 'CUSTOMER', now() FROM generate_series(1,1000) g;
INSERT INTO products (id, name, description, category, price, stock, received, created_at, updated_at)
  SELECT g, 'p'||g, '', 'c', 1000, 100000, 100000 + 2000, now(), now() FROM generate_series(1,100) g;
-- order o: user 1+(o%1000), products 1+(o%100) and 1+((o+1)%100), 1 unit each: 2000 won
INSERT INTO orders (id, user_id, status, subtotal, discount, total, created_at, updated_at, paid_at)
  SELECT o, 1+(o%1000), 'COMPLETED', 2000, 0, 2000, now(), now(), now() FROM generate_series(1,100000) o;
INSERT INTO order_items (order_id, product_id, quantity, unit_price)
  SELECT o, 1+(o%100), 1, 1000 FROM generate_series(1,100000) o
  UNION ALL SELECT o, 1+((o+1)%100), 1, 1000 FROM generate_series(1,100000) o;
INSERT INTO payments (order_id, user_id, amount, status, paid_at)
  SELECT o, 1+(o%1000), 2000, 'SUCCESS', now() FROM generate_series(1,100000) o;
INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, status, attempts, next_attempt_at, created_at)
  SELECT 'e'||o, 'ORDER_COMPLETED', o, '{}', 'SENT', 1, now(), now() FROM generate_series(1,100000) o;
-- each user: one CHARGE of 1,000,000 then 100 PAYMENTs of 2000 (its orders, in id order)
INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id, created_at)
  SELECT u, 'CHARGE', 1000000, 1000000, NULL, now() FROM generate_series(1,1000) u;
INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id, created_at)
  SELECT 1+(o%1000), 'PAYMENT', -2000, 1000000 - 2000*(o/1000 + CASE WHEN o%1000=0 THEN 0 ELSE 1 END), o, now()
  FROM generate_series(1,100000) o ORDER BY o;
INSERT INTO balances (user_id, amount, updated_at) SELECT u, 1000000 - 2000*100, now() FROM generate_series(1,1000) u;
INSERT INTO product_sales_daily (sales_date, product_id, quantity, revenue)
  SELECT current_date, g, 2000, 2000000 FROM generate_series(1,100) g;
SELECT setval(pg_get_serial_sequence('orders','id'), 100000);
ANALYZE;
