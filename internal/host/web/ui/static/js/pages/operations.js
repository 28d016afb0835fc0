// operations.js — recent operations (GET /v1/operations, then live), and
// one followed live with its stages and a cancel button (?id=ID).
//
// Test hooks: #ops-table (tr[data-op-id="ID"], data-state), #op-follow
// (the followed operation: #op-stages li[data-stage], #op-cancel).

import { enc, get } from '../api.js';
import { h, keepFocus, labelCells, replace, stateBadge } from '../dom.js';
import { age, duration, isZeroTime, stateLabel } from '../format.js';
import { followOperation } from '../oplive.js';

export const name = 'operations';

export function mount(root, { live, query }) {
  const ctl = new AbortController();
  const id = query.get('id');
  const followBox = h('div', { id: 'op-follow' });
  const body = h('tbody', {});
  root.append(h('h1', {}, 'Operations'), followBox,
    h('div', { class: 'table-wrap' }, h('table', { id: 'ops-table', class: 'grid' },
      h('thead', {}, h('tr', {}, ['operation', 'kind', 'target', 'state', 'stage', 'took', 'age'].map((c) => h('th', { scope: 'col' }, c)))),
      body)));

  function draw() {
    const ops = [...live.ops.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    keepFocus(() => replace(body, ops.length === 0 ? h('tr', {}, h('td', { colspan: 7, class: 'muted' }, live.loaded ? 'No operations yet.' : 'loading…'))
      : ops.map((o) => h('tr', { 'data-op-id': o.id, 'data-state': o.state },
        h('td', {}, h('a', { href: `/operations?id=${enc(o.id)}` }, h('code', {}, o.id))),
        h('td', {}, o.kind),
        h('td', {}, o.target || '-'),
        h('td', {}, stateBadge(o.state, stateLabel(o.state)), o.error ? h('div', { class: 'muted' }, o.error.code) : null),
        h('td', {}, o.state === 'running' ? o.current_stage || '-' : `${(o.stages || []).length} stages`),
        h('td', { class: 'num' }, duration((isZeroTime(o.finished_at) ? Date.now() : Date.parse(o.finished_at)) - Date.parse(o.created_at))),
        h('td', {}, age(o.created_at))))));
    labelCells(body);
  }
  const unsub = live.subscribe((kind) => {
    if (kind === 'operation' || kind === 'all') draw();
  });
  draw();
  if (id) {
    (async () => {
      try {
        const op = await get(`/v1/operations/${enc(id)}`, { signal: ctl.signal });
        await followOperation(followBox, op, { signal: ctl.signal });
      } catch (err) {
        if (err.name !== 'AbortError') replace(followBox, h('p', { class: 'error', role: 'alert' }, `operation ${id}: ${err.message}`));
      }
    })();
  }
  return () => {
    unsub();
    ctl.abort();
  };
}
