-- make bench-programs: a deterministic sqlite3 workload (an in-memory
-- database: every page and cache entry is a malloc). Tables, 200k-row
-- inserts, indexes, joins, group by, updates, deletes; the output must not
-- depend on the allocator. The runner scales the row counts (@ROWS@).
PRAGMA cache_size = -65536;
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT, since INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item TEXT, qty INTEGER, price REAL, note TEXT);
CREATE TABLE items(name TEXT PRIMARY KEY, category TEXT, weight INTEGER);

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @ROWS@ / 10)
INSERT INTO customers SELECT i, 'customer-' || i || '-' || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 7),
    'city' || (i * 7919 % 97), 1990 + i % 35 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO items SELECT 'item' || i, 'cat' || (i % 17), (i * 31) % 1000 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @ROWS@)
INSERT INTO orders SELECT i, 1 + (i * 104729) % (@ROWS@ / 10), 'item' || (1 + (i * 613) % 500),
    1 + i % 9, ((i * 37) % 10000) / 100.0, printf('%.*c', 5 + i % 60, 'x') FROM n;

CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item ON orders(item, qty);
CREATE INDEX customers_city ON customers(city);

SELECT count(*), sum(qty), round(sum(price * qty), 2) FROM orders;
SELECT c.city, count(*) AS n, round(sum(o.price * o.qty), 2) AS total
  FROM orders o JOIN customers c ON c.id = o.customer
  GROUP BY c.city ORDER BY total DESC, c.city LIMIT 8;
SELECT i.category, count(DISTINCT o.customer), sum(o.qty), max(length(o.note))
  FROM orders o JOIN items i ON i.name = o.item
  GROUP BY i.category ORDER BY i.category;
SELECT c.name, count(*) FROM customers c JOIN orders o ON o.customer = c.id
  WHERE c.since BETWEEN 2000 AND 2004 GROUP BY c.id ORDER BY count(*) DESC, c.name LIMIT 5;

UPDATE orders SET note = note || note, qty = qty + 1 WHERE id % 3 = 0;
DELETE FROM orders WHERE id % 7 = 0;
INSERT INTO orders(customer, item, qty, price, note)
  SELECT customer, item, qty * 2, price / 2, upper(note) FROM orders WHERE id % 5 = 0;

SELECT count(*), sum(qty), sum(length(note)) FROM orders;
SELECT item, count(*), sum(qty) FROM orders GROUP BY item ORDER BY sum(qty) DESC, item LIMIT 5;
SELECT group_concat(city, ',') FROM (SELECT DISTINCT city FROM customers ORDER BY city LIMIT 10);
CREATE TABLE summary AS
  SELECT customer, count(*) AS n, group_concat(item) AS items FROM orders GROUP BY customer;
SELECT count(*), max(n), sum(length(items)) FROM summary;
SELECT customer, n FROM summary ORDER BY n DESC, customer LIMIT 5;
DROP INDEX orders_item;
VACUUM;
SELECT count(*) FROM orders o1 JOIN orders o2 ON o1.customer = o2.customer AND o1.id < o2.id
  WHERE o1.customer % 50 = 0;
