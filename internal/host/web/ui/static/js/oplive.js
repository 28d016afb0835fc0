// oplive.js — an operation's live stages, followed over
// GET /v1/operations/{id}/events (NDJSON), with a cancel button
// (POST /v1/operations/{id}/cancel).
//
// The list is <ol id="op-stages">; each stage is <li data-stage="NAME"
// data-state="running|done|failed|canceled">, saying its state and duration
// in text. A cancel from here is recorded as "the web UI (uid N)" by the
// daemon; the operation's error then says who canceled it at which stage.

import { ApiError, enc, get, ndjson, open, post, sleep } from './api.js';
import { h, inert, replace, text } from './dom.js';
import { duration, stateLabel } from './format.js';
import { stageMs, stageState } from './charts.js';

const MAX_LOG_LINES = 200;

// followOperation draws operation op (as begun) into container and follows
// it to its end. It resolves to the final api.Operation. onUpdate(op) is
// called with each new state. signal stops following (the operation goes on).
export async function followOperation(container, op, { signal, onUpdate } = {}) {
  const state = h('p', { class: 'op-state', id: 'op-state', 'data-testid': 'op-state', role: 'status' });
  const stages = h('ol', { class: 'stages', id: 'op-stages' });
  const log = h('pre', { class: 'op-log', id: 'op-log', 'aria-label': 'operation log' });
  const errBox = h('p', { class: 'error', id: 'op-error', role: 'alert', hidden: true });
  const cancel = h('button', { type: 'button', id: 'op-cancel', class: 'danger', on: { click: doCancel } }, 'Cancel operation');
  const box = h('section', { class: 'op', 'data-testid': 'op-progress', 'data-op-id': op.id, 'aria-live': 'polite' },
    h('h3', {}, `${op.kind} ${op.target || ''}`, h('span', { class: 'muted' }, ` (operation ${op.id})`)),
    state, stages, errBox, cancel, h('details', {}, h('summary', {}, 'log'), log));
  replace(container, box);
  const lines = [];
  let cur = op;

  async function doCancel() {
    cancel.disabled = true;
    text(cancel, 'Cancelling…');
    try {
      await post(`/v1/operations/${enc(op.id)}/cancel`);
    } catch (err) {
      cancel.disabled = false;
      text(cancel, 'Cancel operation');
      errBox.hidden = false;
      text(errBox, `cancel failed: ${err.message}`);
    }
  }

  function draw() {
    const now = Date.now();
    const running = cur.state === 'running';
    text(state, `${stateLabel(cur.state)}${cur.current_stage && running ? ` — ${cur.current_stage}` : ''}`);
    state.dataset.state = cur.state;
    replace(stages, (cur.stages || []).map((st) => {
      const st8 = stageState(st, cur);
      const mark = { done: '✓', running: '…', failed: '✗', canceled: '⊘' }[st8];
      return h('li', { 'data-stage': st.name, 'data-state': st8 },
        h('span', { class: 'mark', 'aria-hidden': 'true' }, mark), ' ',
        h('span', { class: 'stage-name' }, st.name), ' ',
        h('span', { class: 'stage-dur' }, `${{ running: 'running, ', failed: 'failed after ', canceled: 'canceled after ' }[st8] || ''}${duration(stageMs(st, now))}`),
        st.detail && st8 !== 'failed' && st8 !== 'canceled' ? h('span', { class: 'muted' }, ` — ${inert(st.detail)}`) : null);
    }));
    cancel.hidden = !running;
    if (cur.error) {
      errBox.hidden = false;
      text(errBox, inert(cur.error.message));
    }
  }

  const tick = setInterval(draw, 500);
  signal?.addEventListener('abort', () => clearInterval(tick), { once: true });
  draw();
  let backoff = 500;
  try {
    while (!signal?.aborted) {
      try {
        const res = await open(`/v1/operations/${enc(op.id)}/events`, { signal });
        for await (const ev of ndjson(res)) {
          backoff = 500;
          if (ev.operation && ev.operation.id) cur = ev.operation;
          if (ev.type === 'log' && ev.message) {
            lines.push(inert(ev.message));
            if (lines.length > MAX_LOG_LINES) lines.splice(0, lines.length - MAX_LOG_LINES);
            text(log, lines.join('\n'));
          }
          draw();
          onUpdate?.(cur);
          if (ev.type === 'done') break;
        }
        if (cur.state !== 'running') return cur;
        // The stream ended (or said done) before the operation read as
        // finished: read it until it does.
        for (let i = 0; i < 20 && cur.state === 'running' && !signal?.aborted; i++) {
          await sleep(250, signal);
          cur = await get(`/v1/operations/${enc(op.id)}`, { signal });
          draw();
          onUpdate?.(cur);
        }
        if (cur.state !== 'running') return cur;
      } catch (err) {
        if (signal?.aborted) return cur;
        if (err instanceof ApiError && err.code === 'not_found') throw err;
        text(state, `${stateLabel(cur.state)} — lost the operation's stream (${err.message}); reconnecting…`);
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 8000);
    }
    return cur;
  } finally {
    clearInterval(tick);
    draw();
  }
}
