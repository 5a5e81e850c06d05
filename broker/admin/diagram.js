// diagram.js — the timing diagram on a transaction's page: a swimlane timeline
// drawn as inline SVG from ext_data.attempts (engine/attempts.c records each
// call dtmq made: branch_id, op, n, start, end, outcome, status, error). One
// lane per branch op ("01 action", "02 compensate", "00 msg"), a time axis
// relative to the first call, one bar per attempt from start to end (at least
// MIN_BAR wide, so an instant call shows), coloured by outcome and labelled
// "#n status"; hovering a bar shows its details and error text (<title>).

import {el, formatDuration, formatTime, svg} from './dom.js';

export const OUTCOME_COLORS = {
  SUCCESS: '#2e9d5b',
  FAILURE: '#d64545',
  ERROR: '#e08a1e',
  ONGOING: '#3f7fd9',
};
const OTHER_COLOR = '#8a8f98';

const DEFAULT_WIDTH = 1000;
const MIN_WIDTH = 640;
const LABEL_W = 150;
const PAD_LEFT = 12; // between the lane names and the first call
const PAD_RIGHT = 60; // room for the label of a bar at the very end
const AXIS_H = 34;
const LANE_H = 38;
const BAR_Y = 18; // from the lane's top; the label sits above the bar
const BAR_H = 14;
const MIN_BAR = 5;
const LEGEND_H = 30;
const CHAR_W = 6.2; // rough width of one label character at 11px
const ATTEMPTS_KEPT = 64; // what dtmq keeps per transaction (engine/attempts.c)

// Orders ops within a branch as they run: prepare/try, then the forward
// op, then the backward one.
const OP_ORDER = {msg: 0, resume: 0, try: 1, action: 2, confirm: 3, commit: 3, cancel: 4, compensate: 4, rollback: 4};

const laneName = (branchId, op) => `${branchId} ${op}`;

// Orders two {branchId, op} by branch id, then by when the op runs.
export function compareLaneIds(a, b) {
  if (a.branchId !== b.branchId) return a.branchId < b.branchId ? -1 : 1;
  return (OP_ORDER[a.op] ?? 9) - (OP_ORDER[b.op] ?? 9) || a.op.localeCompare(b.op);
}

// Only attempts with the fields the diagram needs, end never before start.
function cleanAttempts(attempts) {
  return (Array.isArray(attempts) ? attempts : [])
    .filter((a) => a && typeof a.branch_id === 'string' && typeof a.op === 'string' &&
      Number.isFinite(a.start) && Number.isFinite(a.end))
    .map((a) => ({...a, end: Math.max(a.end, a.start)}));
}

// The lanes: every branch op that was called, in the order of its first call
// (recording order breaks a tie), then the branch ops never called (from the
// branches table), by branch id.
export function buildLanes(attempts, branches) {
  const lanes = new Map();
  const lane = (branchId, op) => {
    const name = laneName(branchId, op);
    if (!lanes.has(name)) lanes.set(name, {name, branchId, op, attempts: []});
    return lanes.get(name);
  };
  // attempts come in the order dtmq recorded them; `seq` keeps that order for
  // calls that started in the same millisecond
  cleanAttempts(attempts).forEach((a, seq) => lane(a.branch_id, a.op).attempts.push({...a, seq}));
  for (const b of Array.isArray(branches) ? branches : []) {
    if (b && typeof b.branch_id === 'string' && typeof b.op === 'string') lane(b.branch_id, b.op);
  }
  const firstStart = (l) => Math.min(...l.attempts.map((a) => a.start));
  const firstSeq = (l) => Math.min(...l.attempts.map((a) => a.seq));
  const called = [...lanes.values()].filter((l) => l.attempts.length)
    .sort((a, b) => firstStart(a) - firstStart(b) || firstSeq(a) - firstSeq(b));
  const idle = [...lanes.values()].filter((l) => !l.attempts.length).sort(compareLaneIds);
  return [...called, ...idle];
}

// A round tick step (1, 2 or 5 × 10^k ms) giving about `count` ticks over span.
function tickStep(span, count = 8) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return Math.max(step, 1);
}

function clockTime(ms) {
  return formatTime(ms).slice(11); // "00:24:31.547"
}

function axis(scale, span, t0, height) {
  const step = tickStep(span);
  const ticks = [];
  for (let t = 0; t <= span + step / 1000; t += step) {
    const x = scale(t0 + t);
    ticks.push(svg('line', {class: 'grid', x1: x, x2: x, y1: AXIS_H - 6, y2: height, stroke: '#e3e6ea'}));
    ticks.push(svg('text', {class: 'tick', x, y: AXIS_H - 10, 'text-anchor': 'middle'},
      t === 0 ? clockTime(t0) : `+${formatDuration(t)}`));
  }
  return svg('g', {class: 'axis'}, ticks);
}

function attemptTitle(lane, a) {
  const status = a.status ? `HTTP ${a.status}` : 'no HTTP status';
  const lines = [
    `${lane.name}, attempt #${a.n ?? '?'}: ${a.outcome} (${status})`,
    `${formatTime(a.start)}, took ${formatDuration(a.end - a.start)}`,
  ];
  if (a.error) lines.push(a.error);
  return lines.join('\n');
}

function attemptBar(lane, a, scale, top, labelRoom) {
  const x = scale(a.start);
  const width = Math.max(scale(a.end) - x, MIN_BAR);
  const color = OUTCOME_COLORS[a.outcome] || OTHER_COLOR;
  const label = `#${a.n ?? '?'}${a.status ? ` ${a.status}` : ''}`;
  const parts = [
    svg('title', {}, attemptTitle(lane, a)),
    svg('rect', {x, y: top + BAR_Y, width, height: BAR_H, rx: 2, fill: color}),
  ];
  if (labelRoom(x, label.length * CHAR_W)) {
    parts.push(svg('text', {class: 'bar-label', x, y: top + BAR_Y - 4}, label));
  }
  return svg('g', {class: 'attempt', dataset: {lane: lane.name, n: a.n ?? '', outcome: a.outcome || '',
    status: a.status ?? ''}}, parts);
}

// A lane's background stripe and name.
function laneBackground(lane, index, width) {
  const top = AXIS_H + index * LANE_H;
  return svg('g', {class: `lane${lane.attempts.length ? '' : ' idle'}`, dataset: {lane: lane.name}},
    svg('rect', {class: 'lane-bg', x: 0, y: top, width, height: LANE_H,
      fill: index % 2 ? '#ffffff' : '#f6f8fa'}),
    svg('text', {class: 'lane-label', x: 10, y: top + LANE_H / 2 + 4}, lane.name),
    lane.attempts.length ? null : svg('text', {class: 'lane-note', x: LABEL_W + PAD_LEFT, y: top + LANE_H / 2 + 4},
      'not called'));
}

// A lane's bars, drawn over the grid.
function laneBars(lane, index, scale) {
  const top = AXIS_H + index * LANE_H;
  let labelEnd = -Infinity; // labels that would overlap the previous one are left out
  const labelRoom = (x, width) => {
    if (x < labelEnd) return false;
    labelEnd = x + width + 4;
    return true;
  };
  return [...lane.attempts].sort((a, b) => a.start - b.start)
    .map((a) => attemptBar(lane, a, scale, top, labelRoom));
}

function legend(top, width) {
  const items = Object.entries(OUTCOME_COLORS).map(([outcome, color], i) => {
    const x = LABEL_W + PAD_LEFT + i * 110;
    return svg('g', {class: 'legend-item'},
      svg('rect', {x, y: top + 10, width: 12, height: 12, rx: 2, fill: color}),
      svg('text', {x: x + 18, y: top + 20}, outcome));
  });
  return svg('g', {class: 'legend'}, items,
    svg('text', {class: 'legend-note', x: width - 10, y: top + 20, 'text-anchor': 'end'},
      `bars are at least ${MIN_BAR} px wide; hover one for its details`));
}

// The timeline SVG for these attempts and lanes, width pixels wide.
function timelineSvg(attempts, lanes, width) {
  const t0 = Math.min(...attempts.map((a) => a.start));
  const t1 = Math.max(...attempts.map((a) => a.end));
  const span = Math.max(t1 - t0, 1);
  const plotW = width - LABEL_W - PAD_LEFT - PAD_RIGHT;
  const scale = (t) => LABEL_W + PAD_LEFT + ((t - t0) / span) * plotW;
  const lanesBottom = AXIS_H + lanes.length * LANE_H;
  const height = lanesBottom + LEGEND_H;
  return svg('svg', {
    class: 'timeline', id: 'timeline', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': `timing diagram: ${attempts.length} call attempts in ${lanes.length} lanes`,
  },
  lanes.map((lane, i) => laneBackground(lane, i, width)),
  axis(scale, span, t0, lanesBottom),
  svg('g', {class: 'bars'}, lanes.map((lane, i) => laneBars(lane, i, scale))),
  svg('line', {x1: LABEL_W - 6, x2: LABEL_W - 6, y1: AXIS_H, y2: lanesBottom, stroke: '#c9ced6'}),
  legend(lanesBottom, width));
}

function summary(attempts) {
  const t0 = Math.min(...attempts.map((a) => a.start));
  const t1 = Math.max(...attempts.map((a) => a.end));
  const kept = attempts.length >= ATTEMPTS_KEPT ? ` (dtmq keeps the last ${ATTEMPTS_KEPT})` : '';
  return `${attempts.length} call attempt${attempts.length === 1 ? '' : 's'}${kept}, ` +
    `from ${formatTime(t0)} over ${formatDuration(t1 - t0)}.`;
}

// The diagram block for a transaction: a summary line and the SVG (width
// pixels wide: the space the page has for it), or a note when dtmq has
// recorded no call yet.
export function timingDiagram(rawAttempts, branches, width = DEFAULT_WIDTH) {
  const attempts = cleanAttempts(rawAttempts);
  if (!attempts.length) {
    return el('p', {class: 'muted', id: 'timeline-empty'}, 'No call attempt recorded yet.');
  }
  const lanes = buildLanes(attempts, branches);
  return el('div', {class: 'diagram'},
    el('p', {class: 'muted'}, summary(attempts)),
    el('div', {class: 'diagram-scroll'},
      timelineSvg(attempts, lanes, Number.isFinite(width) ? Math.max(MIN_WIDTH, Math.floor(width)) : DEFAULT_WIDTH)));
}
