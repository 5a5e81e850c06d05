// trans.js — one transaction's page (#/trans/GID): its fields from
// /api/dtmsvr/query (with retry_count and last_error from ext_data), the
// timing diagram of its call attempts, its branches, and the "Retry now" and
// "Force stop" buttons, each asked for confirmation first.

import {get, post} from './api.js';
import {el, formatTime, parseExtData, statusBadge} from './dom.js';
import {compareLaneIds, timingDiagram} from './diagram.js';

const UNFINISHED = new Set(['prepared', 'submitted', 'aborting']);
const OPTION_FIELDS = ['timeout_to_fail', 'request_timeout', 'retry_interval', 'retry_limit',
  'concurrent', 'wait_result'];

// "timeout_to_fail=600 s, concurrent" from the flattened options that are set.
function optionsText(t) {
  const parts = [];
  for (const name of OPTION_FIELDS) {
    const value = t[name];
    if (value === true) parts.push(name);
    else if (typeof value === 'number' && value > 0) parts.push(`${name}=${value}${name === 'retry_limit' ? '' : ' s'}`);
  }
  return parts.join(', ');
}

function fieldRows(t, ext) {
  const unfinished = UNFINISHED.has(t.status);
  const nextCron = unfinished && t.next_cron_time
    ? `${formatTime(t.next_cron_time)}${t.next_cron_interval ? ` (interval ${t.next_cron_interval} s)` : ''}`
    : '';
  return [
    ['Status', statusBadge(t.status)],
    ['Mode', t.trans_type],
    ['Created', formatTime(t.create_time)],
    ['Updated', formatTime(t.update_time)],
    ['Finished', formatTime(t.finish_time)],
    ['Rolled back', formatTime(t.rollback_time)],
    ['Rollback reason', t.rollback_reason],
    ['Next run', nextCron],
    ['Retries', ext.retry_count ? String(ext.retry_count) : ''],
    ['Last error', ext.last_error],
    ['Owner', t.owner],
    ['Query prepared', t.query_prepared],
    ['Options', optionsText(t)],
    ['Custom data', t.custom_data],
    ['Result', t.result],
  ].filter(([, value]) => value);
}

function fields(t, ext) {
  return el('dl', {class: 'fields', id: 'fields'},
    fieldRows(t, ext).map(([name, value]) => [
      el('dt', {}, name),
      el('dd', {dataset: {field: name.toLowerCase().replace(/ /g, '-')}}, value),
    ]));
}

function actions(app, t) {
  const open = UNFINISHED.has(t.status);
  const why = open ? null : `the transaction has finished (${t.status})`;
  const retry = () => app.confirmAndRun(
    `Retry ${t.gid} now?\n\ndtmq calls its pending branches at once instead of waiting for the next retry.`,
    () => post('/api/dtmsvr/resetNextCronTime', {gid: t.gid}),
    `Retry of ${t.gid} requested: dtmq runs it now.`);
  const stop = () => app.confirmAndRun(
    `Force stop ${t.gid}?\n\nIt becomes failed at once. No compensation or rollback runs: ` +
    'what its branches did stays done.',
    () => post('/api/dtmsvr/forceStop', {gid: t.gid}),
    `${t.gid} was force-stopped: it is failed now.`);
  return el('div', {class: 'actions'},
    el('button', {type: 'button', id: 'retry-now', disabled: !open, title: why, on: {click: retry}},
      'Retry now'),
    el('button', {type: 'button', id: 'force-stop', class: 'danger', disabled: !open, title: why,
      on: {click: stop}}, 'Force stop'));
}

function branchTable(branches, attempts) {
  const calls = new Map();
  for (const a of Array.isArray(attempts) ? attempts : []) {
    const key = `${a.branch_id} ${a.op}`;
    calls.set(key, (calls.get(key) || 0) + 1);
  }
  const sorted = [...branches].sort((a, b) =>
    compareLaneIds({branchId: a.branch_id, op: a.op}, {branchId: b.branch_id, op: b.op}));
  const head = el('thead', {}, el('tr', {},
    ['Branch', 'Op', 'Status', 'URL', 'Created', 'Finished / updated', 'Calls'].map((h) => el('th', {}, h))));
  const rows = sorted.map((b) => el('tr', {dataset: {branch: b.branch_id, op: b.op}},
    el('td', {}, b.branch_id),
    el('td', {}, b.op),
    el('td', {}, statusBadge(b.status)),
    el('td', {class: 'url'}, b.url || '(none: succeeds at once)'),
    el('td', {class: 'time'}, formatTime(b.create_time)),
    el('td', {class: 'time'}, formatTime(b.finish_time || b.update_time)),
    el('td', {class: 'num'}, String(calls.get(`${b.branch_id} ${b.op}`) || 0))));
  if (!rows.length) rows.push(el('tr', {class: 'empty'}, el('td', {colspan: 7}, 'No branches.')));
  return el('table', {class: 'grid', id: 'branches'}, head, el('tbody', {}, rows));
}

function notFound(gid) {
  return el('section', {class: 'trans-view'},
    el('p', {class: 'crumbs'}, el('a', {href: '#/'}, '← Transactions')),
    el('h1', {}, gid),
    el('p', {class: 'muted', id: 'not-found'}, `dtmq has no transaction with the gid "${gid}".`));
}

// The width the diagram can have: the view's, less its padding and border.
function diagramWidth() {
  const view = document.getElementById('view');
  const style = window.getComputedStyle(view);
  return view.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 2;
}

export async function transView(app, params, gid) {
  const data = await get('/api/dtmsvr/query', {gid});
  const t = data.transaction;
  if (!t) return notFound(gid);
  const ext = parseExtData(t.ext_data);
  const branches = Array.isArray(data.branches) ? data.branches : [];
  return el('section', {class: 'trans-view', dataset: {gid: t.gid, status: t.status}},
    el('p', {class: 'crumbs'}, el('a', {href: '#/'}, '← Transactions')),
    el('div', {class: 'title-row'},
      el('h1', {class: 'gid'}, t.gid), statusBadge(t.status), actions(app, t)),
    fields(t, ext),
    el('h2', {}, 'Timing'),
    timingDiagram(ext.attempts, branches, diagramWidth()),
    el('h2', {}, 'Branches'),
    branchTable(branches, ext.attempts));
}
