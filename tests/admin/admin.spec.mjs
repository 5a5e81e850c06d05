// admin.spec.mjs — the browser test of dtmq's admin page (/admin/). A plain
// Node script: it starts dtmq (DTMQ_TEST_BIN, default build/asan/dtmq) with an
// admin token, makes transactions over HTTP whose branches call dtmq itself
// (/api/ping answers 200, /api/dtmsvr/abort of an unknown gid answers 409,
// a missing route 404, /api/dtmsvr/registerBranch answers 409 until the tcc
// it names is prepared), then drives Debian's Chromium with playwright-core
// through the page and counts each check (checks.mjs prints the summary).
// It saves a screenshot of a transaction's page to docs/admin.png
// (DTMQ_ADMIN_SCREENSHOT overrides the path; empty: no screenshot), and with
// DTMQ_ADMIN_SHOTS=DIR screenshots of the other views into DIR.
//
//   node tests/admin/admin.spec.mjs        (tests/admin/run.sh installs what it needs)

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { check, error, expect, expectEqual, summary } from './checks.mjs';
import { Dtmq } from './dtmq.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.resolve(ROOT, process.env.DTMQ_TEST_BIN || 'build/asan/dtmq');
const SCREENSHOT = process.env.DTMQ_ADMIN_SCREENSHOT ?? path.join(ROOT, 'docs/admin.png');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TOKEN = 'admin-test-token';
const FILLERS = 20; // succeeded sagas made first, so the list has a second page
const SHOTS = process.env.DTMQ_ADMIN_SHOTS || '';
const UI_TIMEOUT = 10000;

const run = Math.random().toString(36).slice(2, 8);
const gids = {
  ok: `order-ok-${run}`,
  failed: `order-refused-${run}`,
  retried: `order-retried-${run}`,
  stuck: `order-stuck-${run}`,
  msg: `msg-${run}`,
  helper: `tcc-helper-${run}`, // prepared during the run: registerBranch on it then succeeds
};

// ---- the transactions -------------------------------------------------------

async function submit(dtmq, route, body) {
  const { status, body: answer } = await dtmq.call('POST', `/api/dtmsvr/${route}`, body);
  if (status !== 200) throw new Error(`${route} ${body.gid}: ${status} ${JSON.stringify(answer)}`);
}

function saga(gid, steps, extra = {}) {
  return { gid, trans_type: 'saga', steps, payloads: steps.map(() => '{"amount":30}'), ...extra };
}

async function createTransactions(dtmq) {
  const ping = `${dtmq.base}/api/ping`;
  const missing = `${dtmq.base}/api/no-such-route`; // 404: an unknown result, retried
  const refuse = `${dtmq.base}/api/dtmsvr/abort`;   // 409 FAILURE: the action failed
  const register = `${dtmq.base}/api/dtmsvr/registerBranch`; // 409 until gids.helper is prepared
  for (let i = 0; i < FILLERS; i++) {
    await submit(dtmq, 'submit', saga(`filler-${run}-${String(i).padStart(2, '0')}`,
      [{ action: ping, compensate: ping }]));
  }
  await submit(dtmq, 'submit', saga(gids.ok, [{ action: ping, compensate: ping }, { action: ping, compensate: ping }]));
  const refused = saga(gids.failed, [{ action: ping, compensate: ping }, { action: refuse, compensate: ping }]);
  refused.payloads[1] = JSON.stringify({ gid: `no-such-gid-${run}`, trans_type: 'msg' });
  await submit(dtmq, 'submit', refused);
  // retried: 02 action is retried until the retry limit rolls the saga back;
  // its compensation fails (409) until the helper tcc exists, then succeeds.
  const retried = saga(gids.retried,
    [{ action: ping, compensate: ping }, { action: missing, compensate: register }], { retry_limit: 2 });
  retried.payloads[1] = JSON.stringify({ gid: gids.helper, trans_type: 'tcc', branch_id: '01' });
  await submit(dtmq, 'submit', retried);
  await submit(dtmq, 'submit', saga(gids.stuck, [{ action: missing, compensate: ping }]));
  await submit(dtmq, 'prepare', { gid: gids.msg, trans_type: 'msg', query_prepared: ping,
    steps: [{ action: ping }], payloads: ['{"sku":42}'] });
  await submit(dtmq, 'submit', { gid: gids.msg, trans_type: 'msg' });

  const status = (want) => ({ t }) => t.status === want;
  await dtmq.waitFor(gids.ok, status('succeed'), 'succeed');
  await dtmq.waitFor(gids.msg, status('succeed'), 'succeed');
  await dtmq.waitFor(gids.failed, status('failed'), 'failed');
  const compensationFailures = ({ ext }) => (ext.attempts || [])
    .filter((a) => a.op === 'compensate' && a.branch_id === '02' && a.outcome === 'FAILURE').length;
  await dtmq.waitFor(gids.retried, (q) => compensationFailures(q) >= 2, 'refused twice', 30000);
  await submit(dtmq, 'prepare', { gid: gids.helper, trans_type: 'tcc' });
  await dtmq.waitFor(gids.retried, status('failed'), 'failed', 30000);
  await dtmq.waitFor(gids.stuck, ({ ext }) => (ext.attempts || []).length >= 2, 'retried twice');
  for (let i = 0; i < FILLERS; i++) {
    await dtmq.waitFor(`filler-${run}-${String(i).padStart(2, '0')}`, status('succeed'), 'succeed');
  }
}

// ---- page helpers -----------------------------------------------------------

// A screenshot of the view for people to look at, when DTMQ_ADMIN_SHOTS is set.
async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function showHash(page, hash) {
  await page.evaluate((h) => { window.location.hash = h; }, hash);
}

async function listedGids(page) {
  return page.$$eval('#transactions tbody tr[data-gid]', (rows) => rows.map((r) => r.dataset.gid));
}

// Accepts (or dismisses) the next confirmation dialog, returning its text.
function answerNextDialog(page, accept) {
  return new Promise((resolve) => {
    page.once('dialog', async (dialog) => {
      const text = dialog.message();
      if (accept) await dialog.accept();
      else await dialog.dismiss();
      resolve(text);
    });
  });
}

async function openTransaction(page, gid) {
  await showHash(page, `#/trans/${encodeURIComponent(gid)}`);
  await page.waitForSelector(`section.trans-view[data-gid="${gid}"]`, { timeout: UI_TIMEOUT });
}

// Compares the page's diagram with ext_data.attempts from the API: one bar per
// attempt, in the right lane, and one lane per branch op.
async function checkDiagram(page, dtmq, gid) {
  await openTransaction(page, gid);
  const { ext, branches } = await dtmq.query(gid);
  const attempts = ext.attempts || [];
  expect(attempts.length > 0, `${gid}: dtmq recorded no attempts`);
  await page.waitForSelector('svg#timeline', { timeout: UI_TIMEOUT });
  const bars = await page.$$eval('svg#timeline g.attempt', (gs) => gs.map((g) => ({
    lane: g.dataset.lane, n: Number(g.dataset.n), outcome: g.dataset.outcome,
    hasTitle: !!g.querySelector('title') })));
  expectEqual(bars.length, attempts.length, `${gid}: bars in the diagram`);
  const key = (x) => `${x.lane} #${x.n} ${x.outcome}`;
  const wanted = attempts.map((a) => key({ lane: `${a.branch_id} ${a.op}`, n: a.n, outcome: a.outcome }));
  expectEqual(bars.map(key).sort(), wanted.sort(), `${gid}: bars (lane, attempt, outcome)`);
  expect(bars.every((b) => b.hasTitle), `${gid}: a bar has no tooltip`);
  const lanes = await page.$$eval('svg#timeline .lane-label', (ts) => ts.map((t) => t.textContent));
  const wantedLanes = new Set([...attempts.map((a) => `${a.branch_id} ${a.op}`),
    ...branches.map((b) => `${b.branch_id} ${b.op}`)]);
  expectEqual([...lanes].sort(), [...wantedLanes].sort(), `${gid}: lanes`);
  return { attempts, lanes };
}

// ---- the checks -------------------------------------------------------------

async function checkAuth(dtmq) {
  await check('requests without the admin token get 401 with a Basic challenge', async () => {
    for (const route of ['/admin/', '/admin/admin.js', '/api/admin/stats']) {
      const { status, headers } = await dtmq.call('GET', route, undefined, { auth: false });
      expectEqual(status, 401, `GET ${route} without token`);
      expect(/^Basic /.test(headers.get('www-authenticate') || ''), `GET ${route}: no WWW-Authenticate: Basic`);
    }
    const wrong = await fetch(`${dtmq.base}/admin/`, {
      headers: { Authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } });
    expectEqual(wrong.status, 401, 'GET /admin/ with a wrong password');
  });

  await check('the page files are served with their content types', async () => {
    const want = { '/admin/': 'text/html', '/admin/admin.js': 'text/javascript',
      '/admin/diagram.js': 'text/javascript', '/admin/admin.css': 'text/css' };
    for (const [route, type] of Object.entries(want)) {
      const { status, headers } = await dtmq.call('GET', route);
      expectEqual(status, 200, `GET ${route}`);
      expect((headers.get('content-type') || '').startsWith(type), `${route}: ${headers.get('content-type')}`);
    }
    expectEqual((await dtmq.call('GET', '/admin/no-such-file.js')).status, 404, 'an unknown file');
    expectEqual((await dtmq.call('GET', '/adminx')).status, 404, '/adminx');
  });
}

async function checkList(page, dtmq) {
  await check('the list shows the transactions and the counts per status', async () => {
    await page.goto(`${dtmq.base}/admin/#/`);
    await page.waitForSelector('#transactions tbody tr[data-gid]', { timeout: UI_TIMEOUT });
    const shown = await listedGids(page);
    for (const gid of Object.values(gids)) expect(shown.includes(gid), `${gid} not listed: ${shown}`);
    expectEqual(shown.length, 20, 'rows on the first page');
    const { body: stats } = await dtmq.call('GET', '/api/admin/stats');
    const badges = await page.$$eval('#stats [data-status]', (as) =>
      Object.fromEntries(as.map((a) => [a.dataset.status, Number(a.dataset.count)])));
    for (const [status, count] of Object.entries(stats.transactions)) {
      expectEqual(badges[status], count, `badge ${status}`);
    }
    expectEqual(badges.failed, 2, 'failed count');
    expectEqual(badges.submitted, 1, 'submitted count');
    expectEqual(badges.prepared, 1, 'prepared count');
    await shot(page, 'list');
  });

  await check('Next page and First page walk the list with next_position', async () => {
    const first = await listedGids(page);
    await page.click('#next-page');
    await page.waitForSelector('.pager .page:text("page 2")', { timeout: UI_TIMEOUT });
    const second = await listedGids(page);
    expectEqual(second.length, FILLERS + Object.keys(gids).length - 20, 'rows on page 2');
    expect(second.every((g) => !first.includes(g)), 'page 2 repeats a row of page 1');
    expect(await page.isDisabled('#next-page'), 'Next page enabled on the last page');
    await page.click('#first-page');
    await page.waitForSelector('.pager .page:text("page 1")', { timeout: UI_TIMEOUT });
    expectEqual(await listedGids(page), first, 'page 1 again');
  });

  await check('the status filter shows only failed transactions', async () => {
    await page.selectOption('#filters select[name=status]', 'failed');
    await page.click('#filters button[type=submit]');
    await page.waitForSelector('#stats .stat.selected[data-status=failed]', { timeout: UI_TIMEOUT });
    const rows = await page.$$eval('#transactions tbody tr[data-gid]', (trs) =>
      trs.map((r) => ({ gid: r.dataset.gid, status: r.dataset.status })));
    expectEqual(rows.map((r) => r.gid).sort(), [gids.failed, gids.retried].sort(), 'failed rows');
    expect(rows.every((r) => r.status === 'failed'), 'a row that is not failed');
    expect(page.url().includes('status=failed'), `the filter is not in the URL: ${page.url()}`);
    await shot(page, 'list-failed');
  });

  await check('the mode filter and the create-time range filter', async () => {
    await page.goto(`${dtmq.base}/admin/#/?mode=msg`);
    await page.waitForSelector(`#transactions tr[data-gid="${gids.msg}"]`, { timeout: UI_TIMEOUT });
    expectEqual(await listedGids(page), [gids.msg], 'mode msg');
    const minute = (ms) => new Date(ms).toISOString().slice(0, 16); // the context runs in UTC
    await showHash(page, `#/?from=${minute(Date.now() + 3600e3)}`);
    await page.waitForSelector('#transactions tr.empty', { timeout: UI_TIMEOUT });
    await page.fill('#filters input[name=from]', minute(Date.now() - 3600e3));
    await page.fill('#filters input[name=to]', minute(Date.now() + 3600e3));
    await page.click('#filters button[type=submit]');
    await page.waitForSelector('#transactions tr[data-gid]', { timeout: UI_TIMEOUT });
    expectEqual((await listedGids(page)).length, 20, 'rows created in the last hour (one page)');
  });

  await check('a row links to the transaction page', async () => {
    await page.goto(`${dtmq.base}/admin/#/?status=failed`);
    await page.click(`#transactions tr[data-gid="${gids.failed}"] a`);
    await page.waitForSelector(`section.trans-view[data-gid="${gids.failed}"]`, { timeout: UI_TIMEOUT });
    const reason = await page.textContent('#fields [data-field=rollback-reason]');
    expectEqual(reason, 'branch 02 action failed', 'rollback reason shown');
  });
}

async function checkTransactionPages(page, dtmq) {
  await check('the refused saga: one bar per attempt, one lane per branch op', async () => {
    const { lanes } = await checkDiagram(page, dtmq, gids.failed);
    await shot(page, 'refused');
    // lanes in the order of their first call: forward, then compensations in reverse
    expectEqual(lanes, ['01 action', '02 action', '02 compensate', '01 compensate'], 'lane order');
    const label = await page.textContent('svg#timeline g.attempt[data-outcome=FAILURE] .bar-label');
    expectEqual(label, '#1 409', 'label of the failed call');
  });

  await check('the retried saga: retries and a retried compensation in the diagram, screenshot', async () => {
    const { attempts, lanes } = await checkDiagram(page, dtmq, gids.retried);
    expectEqual(lanes, ['01 action', '02 action', '02 compensate', '01 compensate'], 'lane order');
    const outcomes = (branchId, op) => attempts.filter((a) => a.branch_id === branchId && a.op === op)
      .sort((a, b) => a.n - b.n).map((a) => a.outcome);
    expectEqual(outcomes('02', 'action'), ['ERROR', 'ERROR', 'ERROR'], '02 action');
    const comp = outcomes('02', 'compensate');
    expect(comp.length >= 3 && comp.at(-1) === 'SUCCESS' && comp.slice(0, -1).every((o) => o === 'FAILURE'),
      `02 compensate: ${comp}`);
    const retries = (await dtmq.query(gids.retried)).ext.retry_count;
    expectEqual(await page.textContent('#fields [data-field=retries]'), String(retries), 'retries shown');
    expect(await page.isDisabled('#force-stop'), 'Force stop enabled on a finished transaction');
    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  await check('the stuck saga shows its last error, Retry now asks and is answered', async () => {
    await openTransaction(page, gids.stuck);
    const lastError = await page.textContent('#fields [data-field=last-error]');
    await shot(page, 'stuck');
    expect(/HTTP 404/.test(lastError || ''), `last error: ${lastError}`);
    const dialog = answerNextDialog(page, true);
    await page.click('#retry-now');
    expect((await dialog).includes(gids.stuck), 'the confirmation does not name the gid');
    await page.waitForSelector('#banner.notice:visible', { timeout: UI_TIMEOUT });
    expect((await page.textContent('#banner-text')).includes('Retry'), 'no notice of the retry');
  });

  await check('Force stop: dismissing does nothing, accepting makes the stuck saga failed', async () => {
    const dismissed = answerNextDialog(page, false);
    await page.click('#force-stop');
    await dismissed;
    await new Promise((r) => setTimeout(r, 300));
    expectEqual((await dtmq.query(gids.stuck)).t.status, 'submitted', 'status after dismissing');
    const accepted = answerNextDialog(page, true);
    await page.click('#force-stop');
    expect((await accepted).includes('Force stop'), 'the confirmation does not say Force stop');
    await page.waitForSelector(`section.trans-view[data-gid="${gids.stuck}"][data-status=failed]`,
      { timeout: UI_TIMEOUT });
    expectEqual((await dtmq.query(gids.stuck)).t.status, 'failed', 'status from the API');
    expectEqual(await page.textContent('.title-row .badge'), 'failed', 'status badge');
    expect(await page.isDisabled('#force-stop'), 'Force stop still enabled');
  });
}

async function checkTopics(page, dtmq) {
  await check('topics: subscribe, unsubscribe and delete from the page', async () => {
    const topic = `orders ${run}`; // a space: the DELETE path is URL-encoded
    const urls = [`${dtmq.base}/api/ping`, `${dtmq.base}/api/ping?copy=2`];
    await showHash(page, '#/topics');
    await page.waitForSelector('#subscribe', { timeout: UI_TIMEOUT });
    for (const url of urls) {
      await page.fill('#subscribe input[name=topic]', topic);
      await page.fill('#subscribe input[name=url]', url);
      await page.fill('#subscribe input[name=remark]', 'stock service');
      await page.click('#subscribe button[type=submit]');
      await page.waitForSelector(`#topics li[data-url="${url}"]`, { timeout: UI_TIMEOUT });
    }
    const subs = async () => {
      const { body } = await dtmq.call('GET', '/api/dtmsvr/scanKV?cat=topics');
      const kv = body.kv.find((k) => k.k === topic);
      return kv ? JSON.parse(kv.v).map((s) => s.url) : null;
    };
    expectEqual(await subs(), urls, 'subscribers after subscribing');
    await shot(page, 'topics');
    let dialog = answerNextDialog(page, true);
    await page.click(`#topics li[data-url="${urls[1]}"] button.unsubscribe`);
    await dialog;
    await page.waitForSelector(`#topics li[data-url="${urls[1]}"]`, { state: 'detached', timeout: UI_TIMEOUT });
    expectEqual(await subs(), [urls[0]], 'subscribers after unsubscribing');
    dialog = answerNextDialog(page, true);
    await page.click(`#topics tr[data-topic="${topic}"] button.delete-topic`);
    await dialog;
    await page.waitForSelector(`#topics tr[data-topic="${topic}"]`, { state: 'detached', timeout: UI_TIMEOUT });
    expectEqual(await subs(), null, 'the topic after deleting it');
  });
}

async function checkErrors(page, dtmq) {
  await check("a non-200 answer is shown with dtmq's message", async () => {
    await showHash(page, '#/?position=not-a-cursor');
    await page.waitForSelector('#banner.error:visible', { timeout: UI_TIMEOUT });
    const text = await page.textContent('#banner-text');
    expect(/answered 400: position: .*not a cursor/.test(text), `banner: ${text}`);
    await showHash(page, '#/');
    await page.waitForSelector('#banner', { state: 'hidden', timeout: UI_TIMEOUT });
  });

  await check('a 401 from the API tells the user to log in', async () => {
    // the browser holds the right login, so the 401 is played by the test
    const isList = (url) => url.pathname === '/api/dtmsvr/all';
    await page.route(isList, (route) => route.fulfill({
      status: 401, contentType: 'application/json', body: '{"message":"unauthorized"}' }));
    try {
      await showHash(page, '#/?status=prepared');
      await page.waitForSelector('#banner.error:visible', { timeout: UI_TIMEOUT });
      const text = await page.textContent('#banner-text');
      expect(/Not logged in/.test(text) && /admin token as the password/.test(text), `banner: ${text}`);
    } finally {
      await page.unroute(isList);
    }
  });
}

async function checkStopped(page, dtmq) {
  await openTransaction(page, gids.failed).catch(() => {});
  await check('dtmq stops cleanly on SIGTERM after serving the page (exit status 0)', async () => {
    const code = await dtmq.stop();
    expectEqual(code, 0, `dtmq's exit status on SIGTERM (log: ${dtmq.log().slice(-1500)})`);
  });

  await check('with dtmq stopped, Refresh shows a readable error banner and keeps the page', async () => {
    await page.click('#refresh');
    await page.waitForSelector('#banner.error:visible', { timeout: UI_TIMEOUT });
    const text = await page.textContent('#banner-text');
    expect(/Cannot reach dtmq/.test(text), `banner: ${text}`);
    expect(await page.isVisible(`section.trans-view[data-gid="${gids.failed}"]`), 'the page went blank');
    await shot(page, 'stopped');
    await page.click('nav a[data-nav=topics]');
    await page.waitForFunction(() => /scanKV/.test(document.getElementById('banner-text').textContent),
      null, { timeout: UI_TIMEOUT });
    expect(await page.isVisible('main#view section'), 'the page went blank after navigating');
  });
}

// ---- main -------------------------------------------------------------------

async function main() {
  const dtmq = new Dtmq(BIN, TOKEN);
  let browser = null;
  const pageErrors = [];
  try {
    await dtmq.start();
    await createTransactions(dtmq);
    await checkAuth(dtmq);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    const context = await browser.newContext({
      httpCredentials: { username: 'admin', password: TOKEN },
      viewport: { width: 1280, height: 860 }, timezoneId: 'UTC', locale: 'en-GB',
    });
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await checkList(page, dtmq);
    await checkTransactionPages(page, dtmq);
    await checkTopics(page, dtmq);
    await checkErrors(page, dtmq);
    await checkStopped(page, dtmq);
    await check('no uncaught JavaScript error on the page', async () => {
      expectEqual(pageErrors, [], 'page errors');
    });
  } catch (e) {
    error('setup', e);
    console.error(dtmq.log().slice(-3000));
  } finally {
    if (browser) await browser.close().catch(() => {});
    await dtmq.stop().catch(() => {});
    dtmq.cleanup();
  }
  return summary();
}

process.exitCode = await main();
