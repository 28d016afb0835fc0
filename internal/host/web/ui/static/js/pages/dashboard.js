// dashboard.js — VMs, images, running operations and host health, live.
//
// Test hooks: #vm-table (rows tr[data-vm="NAME"], buttons
// [data-action="start|stop|restart|delete"]), #image-table
// (tr[data-image="NAME"]), #running-ops (li[data-op-id]), #health,
// #doctor-summary, #doctor-problems (li[data-check="NAME"]), #tap-pool,
// #disk-space, #doctor-refresh.

import { get } from '../api.js';
import { h, inert, keepFocus, labelCells, replace, stateBadge, text } from '../dom.js';
import { age, duration, mib, stateLabel } from '../format.js';
import { vmButtons } from './vmactions.js';

export const name = 'dashboard';

export function mount(root, { live }) {
  const vmBody = h('tbody', {});
  const imgBody = h('tbody', {});
  const opsList = h('ul', { id: 'running-ops', class: 'plain' });
  const doctorSummary = h('p', { id: 'doctor-summary', 'aria-live': 'polite' }, 'reading the doctor report…');
  const doctorProblems = h('ul', { id: 'doctor-problems', class: 'checks' });
  const tapPool = h('p', { id: 'tap-pool' });
  const disk = h('p', { id: 'disk-space' });
  const refresh = h('button', { type: 'button', id: 'doctor-refresh' }, 'Check again');
  const vmCount = h('span', { class: 'muted', id: 'vm-count' });

  root.append(
    h('h1', {}, 'Dashboard'),
    h('section', { id: 'vms', 'aria-labelledby': 'vms-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'vms-h' }, 'VMs ', vmCount), h('a', { class: 'button', href: '/create', id: 'dash-create' }, 'Create VM')),
      h('div', { class: 'table-wrap' },
        h('table', { id: 'vm-table', class: 'grid' },
          h('thead', {}, h('tr', {}, ['name', 'state', 'image', 'IP', 'vCPUs', 'memory', 'hypervisor', 'sessions', 'age', 'actions'].map((c) => h('th', { scope: 'col' }, c)))),
          vmBody))),
    h('div', { class: 'cols' },
      h('section', { id: 'ops', 'aria-labelledby': 'ops-h' }, h('h2', { id: 'ops-h' }, 'Running operations'), opsList,
        h('p', {}, h('a', { href: '/operations' }, 'All operations'))),
      h('section', { id: 'health', 'aria-labelledby': 'health-h' }, h('h2', { id: 'health-h' }, 'Host health'),
        doctorSummary, doctorProblems, tapPool, disk, refresh)),
    h('section', { id: 'images-summary', 'aria-labelledby': 'img-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'img-h' }, 'Images'), h('a', { class: 'button', href: '/images' }, 'Manage images')),
      h('div', { class: 'table-wrap' },
        h('table', { id: 'image-table', class: 'grid' },
          h('thead', {}, h('tr', {}, ['name', 'state', 'distro', 'kernel', 'used by', 'age'].map((c) => h('th', { scope: 'col' }, c)))),
          imgBody))));

  function drawVMs() {
    const vms = [...live.vms.values()].sort((a, b) => a.name.localeCompare(b.name));
    text(vmCount, live.loaded ? `(${vms.length})` : '');
    keepFocus(() => replace(vmBody, !live.loaded ? h('tr', {}, h('td', { colspan: 10, class: 'muted' }, 'loading…'))
      : vms.length === 0 ? h('tr', {}, h('td', { colspan: 10, class: 'muted', id: 'no-vms' }, 'No VMs yet. ', h('a', { href: '/create' }, 'Create one'), '.'))
        : vms.map((v) => h('tr', { 'data-vm': v.name, 'data-state': v.state },
          h('th', { scope: 'row' }, h('a', { href: `/vm/${encodeURIComponent(v.name)}` }, v.name)),
          h('td', {}, stateBadge(v.state, stateLabel(v.state))),
          h('td', {}, v.image),
          h('td', {}, v.ip || '-'),
          h('td', { class: 'num' }, v.vcpus),
          h('td', { class: 'num' }, mib(v.memory_mib)),
          h('td', {}, v.hypervisor + (v.accel ? ` (${v.accel})` : '')),
          h('td', { class: 'num' }, v.sessions ?? 0),
          h('td', {}, age(v.created_at)),
          h('td', {}, vmButtons(v))))));
    labelCells(vmBody);
  }

  function drawImages() {
    const imgs = [...live.images.values()].sort((a, b) => a.name.localeCompare(b.name));
    replace(imgBody, imgs.length === 0 ? h('tr', {}, h('td', { colspan: 6, class: 'muted' }, live.loaded ? 'No images. Bootstrap one under Images.' : 'loading…'))
      : imgs.map((i) => h('tr', { 'data-image': i.name, 'data-warm': (i.warm || []).length > 0 ? 'true' : 'false' },
        h('th', { scope: 'row' }, h('a', { href: `/images/${encodeURIComponent(i.name)}` }, i.name),
          (i.warm || []).length ? [' ', h('span', { class: 'badge state-warm', title: 'creates of a warmed shape restore its snapshot instead of booting' }, 'warm')] : null),
        h('td', {}, stateBadge(i.state, stateLabel(i.state))),
        h('td', {}, [i.distro, i.suite].filter(Boolean).join(' ') || '-'),
        h('td', {}, i.kernel?.release || '-'),
        h('td', {}, (i.used_by || []).join(', ') || '-'),
        h('td', {}, age(i.created_at)))));
    labelCells(imgBody);
  }

  function drawOps() {
    const ops = [...live.ops.values()].filter((o) => o.state === 'running').sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    replace(opsList, ops.length === 0 ? h('li', { class: 'muted' }, 'none')
      : ops.map((o) => h('li', { 'data-op-id': o.id },
        h('a', { href: `/operations?id=${encodeURIComponent(o.id)}` }, `${o.kind} ${o.target || ''}`),
        ` — ${o.current_stage || 'starting'} (${duration(Date.now() - Date.parse(o.created_at))})`)));
  }

  async function doctor() {
    refresh.disabled = true;
    try {
      const rep = await get('/v1/doctor');
      const checks = rep.checks || [];
      const count = (st) => checks.filter((c) => c.status === st).length;
      text(doctorSummary, `${count('ok')} ok, ${count('warn')} warn, ${count('fail')} fail, ${count('skip')} skipped`);
      doctorSummary.dataset.worst = count('fail') ? 'fail' : count('warn') ? 'warn' : 'ok';
      const bad = checks.filter((c) => c.status === 'fail' || c.status === 'warn');
      replace(doctorProblems, bad.map((c) => h('li', { 'data-check': c.name, 'data-status': c.status },
        stateBadge(c.status, stateLabel(c.status)), ' ', h('strong', {}, c.name), ': ', inert(c.detail),
        c.fix ? h('div', { class: 'fix' }, 'Fix: ', inert(c.fix)) : null)));
      const tap = checks.find((c) => c.name === 'tap-pool');
      text(tapPool, tap ? `TAP pool (${tap.status}): ${inert(tap.detail)}` : 'TAP pool: not in the doctor report');
      const d = checks.find((c) => /disk|space/.test(c.name));
      text(disk, d ? `Disk space (${d.status}): ${inert(d.detail)}` : 'Disk space: the doctor report has no disk check (create checks free space itself)');
    } catch (err) {
      text(doctorSummary, `could not read the doctor report: ${err.message}`);
      doctorSummary.dataset.worst = 'fail';
    } finally {
      refresh.disabled = false;
    }
  }
  refresh.addEventListener('click', doctor);

  const draw = () => {
    drawVMs();
    drawImages();
    drawOps();
  };
  const unsub = live.subscribe((kind) => {
    if (kind === 'vm' || kind === 'all') drawVMs();
    if (kind === 'image' || kind === 'all') drawImages();
    if (kind === 'operation' || kind === 'all') drawOps();
  });
  draw();
  doctor();
  const tick = setInterval(draw, 10000);
  const docTick = setInterval(doctor, 60000);
  return () => {
    unsub();
    clearInterval(tick);
    clearInterval(docTick);
  };
}
