// list.js — the transactions list view (#/?gid=&status=&mode=&from=&to=):
// counts per status from /api/admin/stats as badges, a filter form, one page
// of /api/dtmsvr/all (newest first, 20 a page, cursor paging with
// next_position), each row linking to the transaction's page.

import {get} from './api.js';
import {el, formatTime, parseExtData, statusBadge} from './dom.js';

const PAGE_SIZE = 20;
const STATUSES = ['prepared', 'submitted', 'aborting', 'succeed', 'failed'];
const MODES = ['saga', 'tcc', 'xa', 'msg', 'workflow'];
const FILTERS = ['gid', 'status', 'mode', 'from', 'to'];

// A datetime-local value ("2026-11-22T10:30") in the browser's zone → epoch
// ms; an end without seconds takes in the whole of its minute.
function toEpochMs(local, isEnd = false) {
  if (!local) return undefined;
  const ms = new Date(local).getTime();
  if (Number.isNaN(ms)) return undefined;
  return isEnd && local.length <= 16 ? ms + 59999 : ms;
}

// The hash of the list with these parameters (empty ones left out).
function listHash(values) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) if (value) params.set(name, value);
  const qs = params.toString();
  return `#/${qs ? `?${qs}` : ''}`;
}

function readFilters(params) {
  const filters = {};
  for (const name of FILTERS) filters[name] = params.get(name) || '';
  return filters;
}

// The counts per status as badges that filter the list; a note instead when
// they could not be read (the list itself still shows).
function statsBar(stats, filters) {
  if (stats instanceof Error) {
    return el('p', {class: 'stats muted', id: 'stats'}, `Counts per status unavailable: ${stats.message}`);
  }
  const counts = (stats && stats.transactions) || {};
  const total = STATUSES.reduce((sum, s) => sum + (Number(counts[s]) || 0), 0);
  const badge = (status, label, count) => el('a', {
    class: `stat status-${status || 'all'}${filters.status === status ? ' selected' : ''}`,
    href: listHash({...filters, status}),
    title: status ? `show the ${status} transactions` : 'show every status',
    dataset: {status: status || 'all', count},
  }, el('span', {class: 'stat-label'}, label), el('span', {class: 'stat-count'}, String(count)));
  return el('div', {class: 'stats', id: 'stats'},
    badge('', 'all', total),
    STATUSES.map((s) => badge(s, s, Number(counts[s]) || 0)));
}

function select(name, label, options, value) {
  return el('label', {}, label,
    el('select', {name},
      el('option', {value: ''}, 'any'),
      options.map((o) => el('option', {value: o, selected: o === value}, o))));
}

function input(name, label, type, value, placeholder) {
  return el('label', {}, label, el('input', {name, type, value, placeholder}));
}

function filterForm(app, filters) {
  const form = el('form', {class: 'filters', id: 'filters'},
    input('gid', 'GID', 'search', filters.gid, 'exact gid'),
    select('status', 'Status', STATUSES, filters.status),
    select('mode', 'Mode', MODES, filters.mode),
    input('from', 'Created from', 'datetime-local', filters.from),
    input('to', 'Created to', 'datetime-local', filters.to),
    el('div', {class: 'buttons'},
      el('button', {type: 'submit', class: 'primary'}, 'Apply'),
      el('button', {type: 'button', on: {click: () => app.go('#/')}}, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const values = {};
    for (const name of FILTERS) values[name] = String(data.get(name) || '').trim();
    app.go(listHash(values));
  });
  return form;
}

// Why a transaction is where it is: rollback reason, else the last error.
function reasonOf(t) {
  const ext = parseExtData(t.ext_data);
  return t.rollback_reason || ext.last_error || '';
}

function row(t) {
  const ext = parseExtData(t.ext_data);
  const href = `#/trans/${encodeURIComponent(t.gid)}`;
  return el('tr', {dataset: {gid: t.gid, status: t.status}},
    el('td', {class: 'gid'}, el('a', {href}, t.gid)),
    el('td', {}, t.trans_type),
    el('td', {}, statusBadge(t.status)),
    el('td', {class: 'time'}, formatTime(t.create_time)),
    el('td', {class: 'time'}, formatTime(t.finish_time || t.update_time)),
    el('td', {class: 'num'}, ext.retry_count ? String(ext.retry_count) : ''),
    el('td', {class: 'reason', title: reasonOf(t)}, reasonOf(t)));
}

function table(transactions) {
  const head = el('thead', {}, el('tr', {},
    ['GID', 'Mode', 'Status', 'Created', 'Finished / updated', 'Retries', 'Reason / last error']
      .map((h) => el('th', {}, h))));
  const rows = transactions.length ? transactions.map(row)
    : [el('tr', {class: 'empty'}, el('td', {colspan: 7}, 'No transaction matches these filters.'))];
  return el('table', {class: 'grid', id: 'transactions'}, head, el('tbody', {}, rows));
}

function pager(app, filters, params, next) {
  const page = Number(params.get('page')) || 1;
  const firstHash = listHash(filters);
  const nextHash = listHash({...filters, position: next, page: String(page + 1)});
  return el('div', {class: 'pager'},
    el('button', {type: 'button', id: 'first-page', disabled: page <= 1 && !params.get('position'),
      on: {click: () => app.go(firstHash)}}, 'First page'),
    el('span', {class: 'page'}, `page ${page}`),
    el('button', {type: 'button', id: 'next-page', disabled: !next,
      on: {click: () => app.go(nextHash)}}, 'Next page'));
}

export async function listView(app, params) {
  const filters = readFilters(params);
  const query = {
    limit: PAGE_SIZE, gid: filters.gid, status: filters.status, transType: filters.mode,
    createTimeStart: toEpochMs(filters.from), createTimeEnd: toEpochMs(filters.to, true),
    position: params.get('position'),
  };
  const [list, stats] = await Promise.all([
    get('/api/dtmsvr/all', query),
    get('/api/admin/stats').catch((e) => e),
  ]);
  const transactions = Array.isArray(list.transactions) ? list.transactions : [];
  return el('section', {class: 'list-view'},
    el('h1', {}, 'Transactions'),
    statsBar(stats, filters),
    filterForm(app, filters),
    table(transactions),
    pager(app, filters, params, list.next_position || ''));
}
