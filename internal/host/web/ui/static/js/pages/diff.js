// diff.js — what changed in a VM's workspace since it was sent (`banger
// vm diff`): where it came from, the guest's commits, whether changes are
// left uncommitted, a table of the changed files, and on request the whole
// patch (read up to PATCH_MAX bytes). All of it is the guest's account:
// it is inserted only as text (dom.js), never parsed as HTML.
//
// Test hooks: #diff-header, #diff-sent, #diff-status (role=status),
// #diff-error, #diff-commits (li[data-commit=ID]), #diff-uncommitted,
// #diff-files (rows tr; td[data-col="path"]), #diff-totals,
// #diff-truncated, #diff-show-patch, #diff-refresh, #diff-patch (pre),
// #diff-patch-cut.

import { enc, get, open } from '../api.js';
import { h, inert, labelCells, replace, text } from '../dom.js';
import { age } from '../format.js';
import { PATCH_MAX, commitsHeading, cutNote, fileRows, sentFrom, shortID, totals } from '../diffstat.js';

export const name = 'diff';

export function mount(root, { params }) {
  const [vmName] = params;
  const ctl = new AbortController();
  const signal = ctl.signal;
  const sent = h('p', { id: 'diff-sent', class: 'muted' });
  const status = h('p', { id: 'diff-status', class: 'muted', role: 'status' });
  const body = h('div', { id: 'diff-body' });
  const refresh = h('button', { type: 'button', id: 'diff-refresh' }, 'Refresh');
  const showPatch = h('button', { type: 'button', id: 'diff-show-patch', 'aria-expanded': 'false', 'aria-controls': 'diff-patch-section' }, 'Show patch');
  const patchNote = h('p', { id: 'diff-patch-status', class: 'muted', role: 'status' });
  const patch = h('pre', { id: 'diff-patch', class: 'output patch', tabindex: 0, 'aria-label': `patch of ${vmName}'s workspace` });
  const patchSection = h('section', { id: 'diff-patch-section', 'aria-labelledby': 'patch-h', hidden: true },
    h('h2', { id: 'patch-h' }, 'Patch'), patchNote, patch);

  root.append(
    h('div', { id: 'diff-header', class: 'section-head' },
      h('h1', {}, 'Changes in VM ', vmName),
      h('span', { class: 'actions' }, refresh, showPatch, h('a', { class: 'button', href: `/vm/${enc(vmName)}` }, 'Back to the VM'))),
    sent, status, body, patchSection);

  function draw(d) {
    text(sent, sentFrom(d.workspace));
    const commits = d.commits || [];
    const rows = fileRows(d.files);
    if (commits.length === 0 && rows.length === 0) {
      replace(body, h('p', { id: 'diff-nothing' }, 'Nothing changed since it was sent.'));
      return;
    }
    const tbody = h('tbody', {}, rows.map(([st, add, del, path]) => h('tr', { 'data-status': st },
      h('td', {}, st),
      h('td', { class: 'num added' }, add),
      h('td', { class: 'num deleted' }, del),
      h('td', { 'data-col': 'path', class: 'path' }, inert(path)))));
    replace(body,
      h('section', { 'aria-labelledby': 'commits-h' },
        h('h2', { id: 'commits-h' }, commitsHeading(commits.length)),
        commits.length ? h('ul', { id: 'diff-commits', class: 'plain' }, commits.map((c) => h('li', { 'data-commit': c.id },
          h('code', {}, shortID(c.id)), ' ', h('span', { class: 'subject' }, inert(c.subject)), ' ',
          h('span', { class: 'muted' }, `(${inert(c.author)}, ${age(c.time)} ago)`)))) : ''),
      d.uncommitted ? h('p', { id: 'diff-uncommitted', class: 'warn' }, 'Uncommitted changes in the guest (untracked files included).') : '',
      h('section', { 'aria-labelledby': 'files-h' },
        h('h2', { id: 'files-h' }, 'Changed files'),
        h('div', { class: 'table-wrap' },
          h('table', { id: 'diff-files', class: 'grid' },
            h('thead', {}, h('tr', {}, ['status', '+', '−', 'path'].map((c, i) => h('th', { scope: 'col', class: i === 1 || i === 2 ? 'num' : null }, c)))),
            labelCells(tbody))),
        h('p', { id: 'diff-totals' }, totals(d)),
        d.truncated ? h('p', { id: 'diff-truncated', class: 'warn' },
          `More files changed than the ${rows.length} listed: narrow it with \`banger vm diff ${vmName} -- PATHSPEC\`.`) : ''));
  }

  async function load() {
    text(status, 'asking the guest what changed…');
    try {
      const d = await get(`/v1/vms/${enc(vmName)}/workspace/diff`, { signal });
      text(status, '');
      draw(d);
    } catch (err) {
      if (signal.aborted) return;
      text(status, '');
      text(sent, '');
      replace(body, h('p', { id: 'diff-error', class: 'error', role: 'alert' }, inert(err.message)));
    }
  }

  // loadPatch reads the patch, at most PATCH_MAX bytes; past them the
  // stream is broken off and the page says so.
  let patchCtl = null;
  async function loadPatch() {
    patchCtl?.abort();
    const pc = new AbortController();
    patchCtl = pc;
    signal.addEventListener('abort', () => pc.abort(), { once: true });
    text(patchNote, 'reading the patch…');
    text(patch, '');
    try {
      const res = await open(`/v1/vms/${enc(vmName)}/workspace/diff?format=patch`, { signal: pc.signal, accept: 'text/x-diff' });
      const reader = res.body.getReader();
      const buf = new Uint8Array(PATCH_MAX);
      let n = 0;
      let cut = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const take = Math.min(value.length, PATCH_MAX - n);
        buf.set(value.subarray(0, take), n);
        n += take;
        if (take < value.length) {
          cut = true;
          reader.cancel().catch(() => {});
          break;
        }
      }
      const t = new TextDecoder().decode(buf.subarray(0, n));
      if (pc.signal.aborted) return;
      text(patch, inert(t));
      replace(patchNote, t === '' ? 'The patch is empty: nothing changed since it was sent.' : '',
        cut ? h('span', { id: 'diff-patch-cut', class: 'warn' }, cutNote(vmName)) : '');
    } catch (err) {
      if (pc.signal.aborted) return;
      replace(patchNote, h('span', { id: 'diff-patch-error', class: 'error', role: 'alert' }, inert(err.message)));
    }
  }

  showPatch.addEventListener('click', () => {
    const show = patchSection.hidden;
    patchSection.hidden = !show;
    showPatch.setAttribute('aria-expanded', String(show));
    text(showPatch, show ? 'Hide patch' : 'Show patch');
    if (show) loadPatch();
  });
  refresh.addEventListener('click', () => {
    load();
    if (!patchSection.hidden) loadPatch();
  });

  load();
  return () => {
    ctl.abort();
  };
}
