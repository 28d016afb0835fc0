// charts.js — small SVG drawings: sparklines and the stage bar chart.
// Sizes are SVG attributes (not style), so the page's CSP holds.

import { h, s } from './dom.js';
import { duration } from './format.js';

// sparkline draws values (numbers or null for "unknown") as a line in a
// fixed box; max is the top of the scale (the largest value when absent).
export function sparkline(values, { width = 240, height = 48, max, label = '' } = {}) {
  const known = values.filter((v) => v != null && Number.isFinite(v));
  const top = Math.max(max ?? 0, ...known, 1e-9);
  const n = values.length;
  const step = n > 1 ? width / (n - 1) : width;
  const pts = [];
  values.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) return;
    const y = height - 2 - (Math.max(0, v) / top) * (height - 4);
    pts.push(`${(i * step).toFixed(1)},${y.toFixed(1)}`);
  });
  return s('svg', { class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': label, preserveAspectRatio: 'none' },
    s('rect', { class: 'spark-bg', x: 0, y: 0, width, height }),
    pts.length > 1 ? s('polyline', { class: 'spark-line', points: pts.join(' ') }) : null,
    pts.length === 1 ? s('circle', { class: 'spark-dot', cx: pts[0].split(',')[0], cy: pts[0].split(',')[1], r: 2 }) : null);
}

// stageMs is a stage's duration so far: its recorded one, or the time
// since it started when it still runs.
export function stageMs(st, now = Date.now()) {
  if (st.finished_at && !st.finished_at.startsWith('0001-')) return st.duration_ms ?? (Date.parse(st.finished_at) - Date.parse(st.started_at));
  return Math.max(0, now - Date.parse(st.started_at));
}

// stageState says how a stage of op stands: "done", "running" or
// "failed". As frontend.StageFailed reads it, a finished stage whose
// detail is "failed" or "interrupted" failed; so did an unfinished stage
// of an operation that ended.
export function stageState(st, op) {
  const finished = st.finished_at && !st.finished_at.startsWith('0001-');
  if (finished) {
    if (st.detail === 'canceled') return 'canceled'; // the stage a cancel stopped
    return st.detail === 'failed' || st.detail === 'interrupted' ? 'failed' : 'done';
  }
  return op.state === 'running' ? 'running' : 'failed';
}

// stageBars draws an operation's stages as horizontal bars, one row per
// stage, the bar's length its duration; each row also says the duration
// in text. Rows carry data-timeline-stage="NAME".
export function stageBars(op, now = Date.now()) {
  const stages = op.stages || [];
  if (!stages.length) return h('p', { class: 'muted' }, 'no stages recorded');
  const ms = stages.map((st) => stageMs(st, now));
  const total = ms.reduce((a, b) => a + b, 0);
  const longest = Math.max(...ms, 1);
  const W = 100;
  return h('div', { class: 'bars', 'data-testid': 'stage-timeline' },
    h('table', { class: 'bars-table' },
      h('caption', {}, `${op.kind} ${op.target || ''}: ${stages.length} stages, ${duration(total)} in all (${op.state})`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'stage'), h('th', { scope: 'col' }, 'duration'), h('th', { scope: 'col', class: 'bars-cell' }, 'bar'))),
      h('tbody', {}, stages.map((st, i) => {
        const state = stageState(st, op);
        const running = state === 'running';
        const failed = state === 'failed';
        const w = Math.max(0.5, (ms[i] / longest) * W);
        return h('tr', { 'data-timeline-stage': st.name, 'data-state': running ? 'running' : failed ? 'failed' : 'done' },
          h('th', { scope: 'row' }, st.name, running ? ' (running)' : failed ? ' (failed)' : ''),
          h('td', { class: 'num' }, duration(ms[i])),
          h('td', { class: 'bars-cell' },
            s('svg', { class: 'bar', viewBox: `0 0 ${W} 10`, preserveAspectRatio: 'none', width: '100%', height: 14, 'aria-hidden': 'true' },
              s('rect', { class: running ? 'bar-running' : failed ? 'bar-failed' : 'bar-done', x: 0, y: 1, width: w.toFixed(2), height: 8 }))));
      }))));
}
