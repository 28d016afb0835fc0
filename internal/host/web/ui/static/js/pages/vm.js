// vm.js — one VM: its spec, the stage timeline of its last create/start,
// live stats graphs, the live console log, its sessions and an exec box.
//
// Test hooks: #vm-header (data-state), #vm-spec (dd[data-key]; a paused
// VM's "saved state", a fork's "forked from", a warm VM's "warm"),
// [data-testid="stage-timeline"] rows tr[data-timeline-stage="NAME"],
// #stats (#stat-cpu, #stat-rss, #stat-guest-mem, #stat-net-rx,
// #stat-net-tx, #stat-disks; #stats-status), #console-log,
// #console-status, #console-follow, #vm-diff (the link to the workspace's
// changes, diff.js), and what sessions.js and exec.js list.

import { enc, get, open, sleep, textChunks } from '../api.js';
import { h, inert, keepFocus, replace, stateBadge, text } from '../dom.js';
import { bytes, duration, isZeroTime, mib, stateLabel, when } from '../format.js';
import { sparkline, stageBars } from '../charts.js';
import { sentFrom } from '../diffstat.js';
import { vmButtons } from './vmactions.js';
import { sessionsPanel } from './sessions.js';
import { execPanel } from './exec.js';

export const name = 'vm';

const STATS_EVERY = 2000;
const STATS_WINDOW = 60; // samples: two minutes
const CONSOLE_MAX = 64 * 1024; // characters kept on the page

export function mount(root, { live, params, navigate }) {
  const [vmName] = params;
  const ctl = new AbortController();
  const signal = ctl.signal;
  const header = h('div', { id: 'vm-header', class: 'section-head' });
  const spec = h('dl', { id: 'vm-spec', class: 'spec' });
  const timeline = h('div', { id: 'timeline-body' });
  const statsStatus = h('p', { id: 'stats-status', class: 'muted', role: 'status' });
  const statsGrid = h('div', { class: 'stats-grid' });
  const consoleLog = h('pre', { id: 'console-log', class: 'console', tabindex: 0, 'aria-label': `console log of ${vmName}` });
  const consoleStatus = h('p', { id: 'console-status', class: 'muted', role: 'status' });
  const follow = h('input', { type: 'checkbox', id: 'console-follow', checked: true });
  const sessions = sessionsPanel(vmName, live, signal);
  const exec = execPanel(vmName, signal);

  root.append(
    header,
    h('div', { class: 'cols' },
      h('section', { 'aria-labelledby': 'spec-h' }, h('h2', { id: 'spec-h' }, 'Spec'), spec),
      h('section', { id: 'timeline', 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, 'Last create/start'), timeline)),
    h('section', { id: 'stats', 'aria-labelledby': 'stats-h' }, h('h2', { id: 'stats-h' }, 'Live stats'), statsStatus, statsGrid),
    sessions.el,
    exec.el,
    h('section', { id: 'console', 'aria-labelledby': 'console-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'console-h' }, 'Console log'),
        h('span', { class: 'field-check' }, follow, h('label', { for: 'console-follow' }, 'Keep scrolled to the end'))),
      consoleStatus, consoleLog));

  let gone = false;
  function drawVM() {
    const v = live.vms.get(vmName);
    if (!v) {
      if (live.loaded) {
        gone = true;
        replace(header, h('h1', {}, vmName), h('p', { class: 'error', id: 'vm-missing', role: 'alert' }, 'There is no VM of this name (deleted?). ', h('a', { href: '/' }, 'Back to the dashboard')));
        replace(spec);
      } else {
        replace(header, h('h1', {}, vmName), h('p', { class: 'muted' }, 'loading…'));
      }
      return;
    }
    gone = false;
    header.dataset.state = v.state;
    keepFocus(() => replace(header,
      h('h1', {}, 'VM ', v.name, ' ', stateBadge(v.state, stateLabel(v.state))),
      h('span', { class: 'actions' },
        h('a', { class: 'button', id: 'vm-diff', href: `/vm/${enc(v.name)}/diff` }, 'Changes'),
        vmButtons(v, { onDeleted: () => navigate('/') }))));
    const rows = [
      ['id', v.id], ['state', v.state], ['image', v.image], ['vCPUs', v.vcpus], ['memory', mib(v.memory_mib)],
      ['disk', bytes(v.disk_bytes)], ['hypervisor', v.hypervisor + (v.accel ? ` (${v.accel})` : '')],
      ['IP', v.ip], ['MAC', v.mac], ['TAP', v.tap], ['PID', v.pid], ['SSH', v.ssh],
      ['sessions running', v.sessions ?? 0], ['created', when(v.created_at)], ['started', isZeroTime(v.started_at) ? '-' : when(v.started_at)],
      ['directory', v.dir], ['console log', v.console_log],
    ];
    if (v.state === 'paused' || v.state_bytes) rows.splice(2, 0, ['saved state', `${bytes(v.state_bytes || 0)} on disk: Resume (or Start) restores it, Stop discards it`]);
    if (v.forked_from) rows.push(['forked from', v.forked_from]);
    if (v.warm) rows.push(['warm', 'restored from its image’s warm snapshot']);
    if (v.workspace) rows.push(['workspace', sentFrom(v.workspace)]);
    replace(spec, rows.map(([k, val]) => [h('dt', {}, k), h('dd', { 'data-key': k }, val === undefined || val === '' || val === 0 && k === 'PID' ? '-' : String(val))]),
      (v.warnings || []).length ? [h('dt', {}, 'warnings'), h('dd', { 'data-key': 'warnings', class: 'warn' }, v.warnings.map((w) => h('div', {}, inert(w))))] : [],
      v.last_exit ? [h('dt', {}, 'last exit'), h('dd', { 'data-key': 'last exit', class: 'warn' },
        h('div', {}, inert(v.last_exit.reason)), v.last_exit.console_tail ? h('pre', {}, inert(v.last_exit.console_tail)) : '')] : []);
  }

  function drawTimeline() {
    const op = live.lastOp(vmName, ['vm.create', 'vm.start', 'vm.restart', 'vm.pause', 'vm.resume']);
    replace(timeline, op ? [stageBars(op), h('p', {}, h('a', { href: `/operations?id=${enc(op.id)}` }, `operation ${op.id}`))]
      : h('p', { class: 'muted' }, live.loaded ? 'No create or start of this VM is among the recent operations.' : 'loading…'));
  }

  // Stats: polled every 2s while the VM runs, a window kept for the graphs.
  const samples = [];
  function drawStats() {
    const last = samples[samples.length - 1];
    const rate = (key) => samples.map((s, i) => {
      if (i === 0) return null;
      const p = samples[i - 1];
      const dt = (Date.parse(s.time) - Date.parse(p.time)) / 1000;
      return dt > 0 && s[key] >= p[key] ? (s[key] - p[key]) / dt : null;
    });
    const cpu = samples.map((s) => (s.cpu_percent >= 0 ? s.cpu_percent : null));
    const rss = samples.map((s) => s.host_rss_bytes);
    const gmem = samples.map((s) => s.guest_mem_used_bytes ?? null);
    const rx = rate('net_rx_bytes');
    const tx = rate('net_tx_bytes');
    const lastOf = (a) => a[a.length - 1];
    const card = (id, title, values, now, opts) => h('figure', { id, class: 'stat' },
      h('figcaption', {}, h('span', {}, title), ' ', h('strong', { class: 'stat-now' }, now)),
      sparkline(values, { label: `${title}: ${now}`, ...opts }));
    if (!last) return;
    replace(statsGrid,
      card('stat-cpu', 'CPU', cpu, lastOf(cpu) == null ? 'measuring…' : `${lastOf(cpu).toFixed(1)} %`, { max: 100 }),
      card('stat-rss', 'Host RSS', rss, bytes(lastOf(rss))),
      card('stat-guest-mem', 'Guest memory used', gmem, last.guest_mem_used_bytes == null ? 'agent did not answer'
        : `${bytes(last.guest_mem_used_bytes)} of ${bytes(last.guest_mem_total_bytes)}`, { max: last.guest_mem_total_bytes || undefined }),
      card('stat-net-rx', 'Net received', rx, lastOf(rx) == null ? '-' : `${bytes(lastOf(rx))}/s`),
      card('stat-net-tx', 'Net sent', tx, lastOf(tx) == null ? '-' : `${bytes(lastOf(tx))}/s`),
      h('figure', { id: 'stat-disks', class: 'stat' }, h('figcaption', {}, 'Disks'),
        h('ul', { class: 'plain' }, (last.disks || []).map((d) => h('li', {}, `${d.name}: ${bytes(d.used_bytes)} used of ${bytes(d.size_bytes)}`)))));
  }
  async function pollStats() {
    while (!signal.aborted) {
      const v = live.vms.get(vmName);
      if (v && v.state === 'running') {
        try {
          const st = await get(`/v1/vms/${enc(vmName)}/stats`, { signal });
          samples.push(st);
          if (samples.length > STATS_WINDOW) samples.shift();
          text(statsStatus, `sampled every ${STATS_EVERY / 1000}s; the graphs show the last ${duration(STATS_WINDOW * STATS_EVERY)}`);
          drawStats();
        } catch (err) {
          if (signal.aborted) return;
          text(statsStatus, `no stats: ${err.message}`);
        }
      } else {
        text(statsStatus, v ? `no stats while the VM is ${v.state}` : 'no stats');
      }
      await sleep(STATS_EVERY, signal);
    }
  }

  // Console: streamed from the start of the log (follow=true), bounded on
  // the page, shown inert. Re-opened when the stream ends.
  let consoleText = '';
  function addConsole(t) {
    consoleText += inert(t.replace(/\r\n?/g, '\n'));
    if (consoleText.length > CONSOLE_MAX) {
      const cut = consoleText.indexOf('\n', consoleText.length - CONSOLE_MAX);
      consoleText = `[… earlier output not shown …]\n${consoleText.slice(cut < 0 ? consoleText.length - CONSOLE_MAX : cut + 1)}`;
    }
    text(consoleLog, consoleText);
    if (follow.checked) consoleLog.scrollTop = consoleLog.scrollHeight;
  }
  async function followConsole() {
    let backoff = 1000;
    while (!signal.aborted) {
      if (gone) {
        await sleep(2000, signal);
        continue;
      }
      try {
        const res = await open(`/v1/vms/${enc(vmName)}/console?follow=true`, { signal, accept: 'text/plain' });
        consoleText = '';
        text(consoleLog, '');
        text(consoleStatus, 'following the console log live');
        backoff = 1000;
        for await (const chunk of textChunks(res)) addConsole(chunk);
        text(consoleStatus, 'the console stream ended; reopening…');
      } catch (err) {
        if (signal.aborted) return;
        text(consoleStatus, `console: ${err.message}; trying again in ${backoff / 1000}s`);
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  const unsub = live.subscribe((kind, key) => {
    if (kind === 'all' || (kind === 'vm' && key === vmName)) drawVM();
    if (kind === 'all' || kind === 'operation') drawTimeline();
  });
  drawVM();
  drawTimeline();
  pollStats();
  followConsole();
  const tick = setInterval(() => {
    const op = live.lastOp(vmName, ['vm.create', 'vm.start', 'vm.restart', 'vm.pause', 'vm.resume']);
    if (op && op.state === 'running') drawTimeline();
  }, 1000);
  return () => {
    unsub();
    clearInterval(tick);
    ctl.abort();
    sessions.close();
  };
}
