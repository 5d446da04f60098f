/**
 * Deterministic datasets for the benchmark's transfer rows (scripts/bench.mjs)
 * and the slow-link tests: CSV and JSON-lines text with a realistic mix of
 * columns (sequential ids and timestamps, names, e-mail addresses, cities from
 * a list, prices, free text of varied length), and the "second versions" of
 * issue 14: rows appended at the end, rows inserted in the middle.
 *
 * Row `i` of a dataset depends only on `i` and the seed, so the same call
 * writes the same bytes on every machine, and new rows (appended or inserted,
 * drawn with another seed) are new bytes, as a real second version's are.
 */
import fs from 'node:fs';

// The fixture generator's PRNG (mulberry32): deterministic numbers in [0, 1).
import { rng } from '../../fixtures/bikeshare/generate.mjs';

export { rng };

const FIRST =
  'Ada Alan Amara Ana Ben Bo Carla Chen Dara Diego Elif Emma Farah Femi Gita Hana Ivan Jana Jonas Kai Kofi Lea Lin Luca Maya Mei Nadia Noah Omar Olga Pavel Priya Quinn Rosa Sami Sara Tariq Teo Uma Vera Wei Yara Yusuf Zoe'.split(
    ' ',
  );
const LAST = 'Adams Berg Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Meyer Novak Okafor Petrov Quispe Rossi Silva Tanaka Umarov Varga Wagner Xu Yilmaz Zhang'.split(' ');
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.net', 'uni.example.edu'];
const CITIES = [
  ['Lisbon', 'PT'],
  ['Porto', 'PT'],
  ['Madrid', 'ES'],
  ['Lyon', 'FR'],
  ['Paris', 'FR'],
  ['Berlin', 'DE'],
  ['Hamburg', 'DE'],
  ['Warsaw', 'PL'],
  ['Prague', 'CZ'],
  ['Vienna', 'AT'],
  ['Milan', 'IT'],
  ['Lagos', 'NG'],
  ['Nairobi', 'KE'],
  ['Osaka', 'JP'],
  ['Seoul', 'KR'],
  ['Lima', 'PE'],
  ['Toronto', 'CA'],
  ['Austin', 'US'],
  ['Chicago', 'US'],
  ['Sydney', 'AU'],
];
const CATEGORIES = {
  books: ['paperback', 'hardcover', 'e-book', 'audiobook'],
  garden: ['seed mix', 'hose 25 m', 'pruning shears', 'planter'],
  kitchen: ['kettle', 'chef knife', 'cast iron pan', 'spice rack'],
  sports: ['yoga mat', 'running shoes', 'bike light', 'water bottle'],
  toys: ['puzzle 1000', 'building set', 'plush bear', 'kite'],
  office: ['desk lamp', 'notebook A5', 'ergonomic chair', 'monitor arm'],
};
const CATEGORY_NAMES = Object.keys(CATEGORIES);
const STATUS = ['delivered', 'delivered', 'delivered', 'shipped', 'pending', 'returned', 'cancelled'];
const WORDS = (
  'please leave at the door call before delivery gift wrap fragile second floor no bell ' +
  'back entrance weekend only customer asked for invoice damaged box replaced late courier ' +
  'address corrected discount applied loyal customer first order express shipping'
).split(' ');
const EVENTS = ['page_view', 'page_view', 'click', 'search', 'add_to_cart', 'checkout', 'login', 'logout'];
const PAGES = ['/', '/search', '/cart', '/checkout', '/account', '/help', '/products/', '/category/'];

const pick = (r, xs) => xs[Math.floor(r() * xs.length)];
/** 2024-01-01T00:00:00Z plus `i` times 37 s, as ISO 8601 without milliseconds. */
const stamp = (i) => new Date(Date.UTC(2024, 0, 1) + i * 37_000).toISOString().slice(0, 19) + 'Z';
const seedOf = (i, seed) => (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(seed + 1, 0x85ebca6b)) >>> 0;
function note(r) {
  const n = Math.floor(r() * r() * 12);
  const words = [];
  for (let k = 0; k < n; k++) words.push(pick(r, WORDS));
  const text = words.join(' ');
  return r() < 0.2 && text ? `"${text}, ${pick(r, WORDS)}"` : text;
}

export const CSV_HEADER = 'order_id,created_at,customer,email,city,country,category,product,quantity,unit_price,discount,total,status,note\n';

/** Row `i` of the CSV of `seed`, with its newline. */
export function csvRow(i, seed = 1) {
  const r = rng(seedOf(i, seed));
  const first = pick(r, FIRST);
  const last = pick(r, LAST);
  const [city, country] = pick(r, CITIES);
  const category = pick(r, CATEGORY_NAMES);
  const quantity = 1 + Math.floor(r() * r() * 9);
  const price = Math.round((2 + r() * r() * 300) * 100) / 100;
  const discount = r() < 0.7 ? 0 : pick(r, [5, 10, 15, 20]);
  const total = Math.round(quantity * price * (100 - discount)) / 100;
  const email = `${first.toLowerCase()}.${last.toLowerCase()}${Math.floor(r() * 100)}@${pick(r, DOMAINS)}`;
  return `${100000 + i},${stamp(i)},${first} ${last},${email},${city},${country},${category},${pick(r, CATEGORIES[category])},${quantity},${price.toFixed(2)},${discount},${total.toFixed(2)},${pick(r, STATUS)},${note(r)}\n`;
}

/** Line `i` of the JSON-lines event log of `seed`, with its newline. */
export function jsonLine(i, seed = 1) {
  const r = rng(seedOf(i, seed));
  const [city, country] = pick(r, CITIES);
  const event = pick(r, EVENTS);
  const rec = {
    id: 500000 + i,
    ts: stamp(i),
    event,
    user: { id: Math.floor(r() * 50_000), name: `${pick(r, FIRST)} ${pick(r, LAST)}`, city, country },
    page: `${pick(r, PAGES)}${r() < 0.3 ? Math.floor(r() * 2000) : ''}`,
    duration_ms: Math.floor(r() * r() * 20_000),
    ...(event === 'search' ? { query: `${pick(r, WORDS)} ${pick(r, WORDS)}` } : {}),
    ...(event === 'add_to_cart' || event === 'checkout' ? { cart: { items: 1 + Math.floor(r() * 5), value: Math.round(r() * 50_000) / 100 } } : {}),
    tags: r() < 0.5 ? [] : [pick(r, CATEGORY_NAMES), ...(r() < 0.3 ? [pick(r, CATEGORY_NAMES)] : [])],
  };
  return `${JSON.stringify(rec)}\n`;
}

/** Writes rows `from`, `from + 1`, ... of `line` to `fd` until `bytes` bytes or `rows` rows; returns the rows and bytes written. */
function writeRows(fd, line, seed, from, { bytes = Infinity, rows = Infinity }) {
  let n = 0;
  let size = 0;
  let batch = [];
  let batchSize = 0;
  while (size < bytes && n < rows) {
    const s = line(from + n, seed);
    batch.push(s);
    batchSize += s.length; // ASCII only: characters are bytes
    size += s.length;
    n++;
    if (batchSize >= 1 << 20) {
      fs.writeSync(fd, batch.join(''));
      batch = [];
      batchSize = 0;
    }
  }
  if (batch.length) fs.writeSync(fd, batch.join(''));
  return { rows: n, bytes: size };
}

/** Writes a CSV of at least `bytes` bytes (header, then rows 0, 1, ...); returns its row count and size. */
export function writeCsv(file, bytes, seed = 1) {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, CSV_HEADER);
    const r = writeRows(fd, csvRow, seed, 0, { bytes: bytes - CSV_HEADER.length });
    return { rows: r.rows, bytes: r.bytes + CSV_HEADER.length };
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a JSON-lines file of at least `bytes` bytes; returns its line count and size. */
export function writeJsonl(file, bytes, seed = 1) {
  const fd = fs.openSync(file, 'w');
  try {
    return writeRows(fd, jsonLine, seed, 0, { bytes });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The second version of a CSV of `rows` rows written by writeCsv: `src` with
 * `count` new rows appended (rows `rows`, `rows + 1`, ... : the next orders).
 */
export function appendCsvRows(src, dst, rows, count, seed = 1) {
  fs.copyFileSync(src, dst);
  const fd = fs.openSync(dst, 'a');
  try {
    writeRows(fd, csvRow, seed, rows, { rows: count });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The second version of a CSV with `count` new rows (drawn with another seed)
 * inserted at the line boundary nearest the middle of `src`.
 */
export function insertCsvRows(src, dst, count, seed = 1) {
  const data = fs.readFileSync(src);
  const mid = data.indexOf(0x0a, data.length >> 1) + 1 || data.length;
  const fd = fs.openSync(dst, 'w');
  try {
    fs.writeSync(fd, data.subarray(0, mid));
    writeRows(fd, csvRow, seed + 1000, 2_000_000_000 - count, { rows: count });
    fs.writeSync(fd, data.subarray(mid));
  } finally {
    fs.closeSync(fd);
  }
}
