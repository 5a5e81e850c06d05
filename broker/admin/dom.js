// dom.js — small helpers for the admin page: build HTML and SVG elements whose
// text always goes in as textContent (never innerHTML), and format times and
// durations for people.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Appends children (strings become text nodes; null, undefined and false are
// skipped; arrays are flattened) to node.
function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Sets attributes; "on" is an object of event listeners, "dataset" of data-*
// values; a value of null, undefined or false leaves the attribute out.
function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'on') {
      for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    } else if (name === 'dataset') {
      for (const [key, v] of Object.entries(value)) node.dataset[key] = String(v);
    } else {
      node.setAttribute(name, value === true ? '' : String(value));
    }
  }
}

// An HTML element: el('a', {href: '#/'}, 'text', otherNode).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

// An SVG element, same calling convention as el().
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

// Replaces every child of node with children.
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

// "2026-11-22 00:24:31.547" in the browser's time zone, from an RFC 3339
// string or epoch milliseconds; "" for an empty or invalid value.
export function formatTime(value) {
  if (value === null || value === undefined || value === '') return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// "850 ms", "1.5 s", "2 min 5 s", "3 h 10 min".
export function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${Number((ms / 1000).toFixed(ms < 10000 ? 2 : 1))} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
}

// A status badge: <span class="badge status-failed">failed</span>.
export function statusBadge(status) {
  return el('span', {class: `badge status-${status || 'unknown'}`}, status || '?');
}

// Parses a transaction's ext_data (a JSON string) into an object; {} when
// empty or not JSON, so a page never fails on it.
export function parseExtData(text) {
  if (!text) return {};
  try {
    const value = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}
