// images.js — the images list (/images) and one image (/images/NAME):
// its artifacts and digests, parent, kernel and what it suits, its warm
// snapshots; promote, warm, unwarm and remove (refused while VMs use it:
// the reason is shown, and force is offered).
//
// Test hooks: #images-table (tr[data-image="NAME"], data-warm="true" on a
// warmed image), #image-detail, #image-artifacts, #image-warm-table
// (tr[data-warm-shape]), #image-promote, #image-warm, #image-unwarm,
// #image-remove, #image-remove-error, #image-force-remove, #image-op (the
// promote or warm operation's live stages).

import { del, enc, post } from '../api.js';
import { h, inert, keepFocus, labelCells, replace, stateBadge } from '../dom.js';
import { age, bytes, mib, stateLabel, when } from '../format.js';
import { busy, confirmDialog, flash } from '../forms.js';
import { followOperation } from '../oplive.js';

export const name = 'images';

export function mount(root, ctx) {
  return ctx.params.length ? detail(root, ctx) : list(root, ctx);
}

function list(root, { live }) {
  const body = h('tbody', {});
  root.append(
    h('div', { class: 'section-head' }, h('h1', {}, 'Images'),
      h('span', { class: 'actions' },
        h('a', { class: 'button', href: '/images/bootstrap', id: 'images-bootstrap' }, 'Bootstrap'),
        h('a', { class: 'button', href: '/images/build', id: 'images-build' }, 'Build'),
        h('a', { class: 'button', href: '/images/register', id: 'images-register' }, 'Register'))),
    h('div', { class: 'table-wrap' }, h('table', { id: 'images-table', class: 'grid' },
      h('thead', {}, h('tr', {}, ['name', 'state', 'distro', 'libc', 'kernel', 'parent', 'used by', 'age'].map((c) => h('th', { scope: 'col' }, c)))),
      body)));
  function draw() {
    const imgs = [...live.images.values()].sort((a, b) => a.name.localeCompare(b.name));
    keepFocus(() => replace(body, imgs.length === 0 ? h('tr', {}, h('td', { colspan: 8, class: 'muted' }, live.loaded ? 'No images yet: bootstrap one.' : 'loading…'))
      : imgs.map((i) => h('tr', { 'data-image': i.name, 'data-warm': (i.warm || []).length > 0 ? 'true' : 'false' },
        h('th', { scope: 'row' }, h('a', { href: `/images/${enc(i.name)}` }, i.name),
          (i.warm || []).length ? [' ', h('span', { class: 'badge state-warm', title: 'creates of a warmed shape restore its snapshot instead of booting' }, 'warm')] : null),
        h('td', {}, stateBadge(i.state, stateLabel(i.state))),
        h('td', {}, [i.distro, i.suite].filter(Boolean).join(' ') || '-'),
        h('td', {}, i.libc || '-'),
        h('td', {}, i.kernel?.release || '-'),
        h('td', {}, i.parent || '-'),
        h('td', {}, (i.used_by || []).join(', ') || '-'),
        h('td', {}, age(i.created_at))))));
    labelCells(body);
  }
  const unsub = live.subscribe((kind) => {
    if (kind === 'image' || kind === 'all') draw();
  });
  draw();
  return unsub;
}

function detail(root, { live, params, navigate }) {
  const [imgName] = params;
  const ctl = new AbortController();
  const body = h('div', { id: 'image-detail' });
  const opBox = h('div', { id: 'image-op' });
  const removeErr = h('div', { id: 'image-remove-error', role: 'alert', hidden: true });
  root.append(h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '/images' }, 'Images'), ' / ', imgName), body);

  async function remove(force) {
    const q = force ? '?force=true' : '';
    try {
      await del(`/v1/images/${enc(imgName)}${q}`);
      flash(`removed image ${imgName}`);
      navigate('/images');
    } catch (err) {
      removeErr.hidden = false;
      const force = h('button', { type: 'button', id: 'image-force-remove', class: 'danger' }, 'Remove anyway (force)');
      force.addEventListener('click', () => busy(force, async () => {
        if (await confirmDialog(`Force the removal of ${imgName}? VMs that use it will no longer start.`, 'Force remove')) await remove(true);
      }));
      replace(removeErr, h('p', { class: 'error' }, `Not removed: ${inert(err.message)}`),
        err.code === 'failed_precondition' || err.code === 'conflict' || err.field === 'force' ? force : null);
    }
  }

  function draw() {
    const i = live.images.get(imgName);
    if (!i) {
      replace(body, h('h1', {}, 'Image ', imgName), h('p', { class: live.loaded ? 'error' : 'muted' }, live.loaded ? 'There is no image of this name.' : 'loading…'), removeErr, opBox);
      return;
    }
    const k = i.kernel || {};
    const promote = h('button', { type: 'button', id: 'image-promote' }, 'Promote');
    promote.addEventListener('click', () => busy(promote, async () => {
      const op = await post(`/v1/images/${enc(imgName)}/promote`);
      await followOperation(opBox, op, { signal: ctl.signal });
    }));
    const warm = h('button', { type: 'button', id: 'image-warm', title: 'boot a VM of the configured shape to readiness and keep its snapshot' }, 'Warm');
    warm.addEventListener('click', () => busy(warm, async () => {
      const op = await post(`/v1/images/${enc(imgName)}/warm`, {});
      await followOperation(opBox, op, { signal: ctl.signal });
    }));
    const warmed = (i.warm || []).length > 0;
    const unwarm = h('button', { type: 'button', id: 'image-unwarm', disabled: !warmed }, 'Unwarm');
    unwarm.addEventListener('click', () => busy(unwarm, async () => {
      if (!(await confirmDialog(`Remove the warm snapshots of ${imgName}? Its VMs then boot cold.`, 'Unwarm'))) return;
      await del(`/v1/images/${enc(imgName)}/warm`);
      flash(`image ${imgName} has no warm snapshot now`);
    }));
    const rm = h('button', { type: 'button', id: 'image-remove', class: 'danger' }, 'Remove');
    rm.addEventListener('click', () => busy(rm, async () => {
      if (await confirmDialog(`Remove image ${imgName}? Its files are deleted.`, 'Remove')) await remove(false);
    }));
    const suit = (ok, reason) => (ok ? 'yes' : `no${reason ? `: ${inert(reason)}` : ''}`);
    const rows = [
      ['state', stateLabel(i.state)], ['id', i.id], ['distro', [i.distro, i.suite].filter(Boolean).join(' ')], ['libc', i.libc],
      ['agent version', i.agent_version], ['parent', i.parent], ['source', i.source], ['fingerprint', i.fingerprint],
      ['kernel release', k.release], ['kernel compression', k.compression],
      ['boots under QEMU', suit(k.qemu, k.qemu_reason)],
      ['boots under Firecracker', suit(k.firecracker, k.firecracker_reason) + (k.firecracker_min_version ? ` (Firecracker ${k.firecracker_min_version} or newer)` : '')],
      ['services', (i.services || []).map((s) => (s.port ? `${s.name} (port ${s.port})` : s.name)).join(', ')],
      ['readiness probes', (i.probes || []).map((p) => `${p.name} (${p.kind} ${p.port})`).join(', ')],
      ['provisioning', (i.provisioning || []).join(', ')],
      ['used by', (i.used_by || []).join(', ')], ['created', when(i.created_at)], ['healed', when(i.healed_at)],
    ];
    keepFocus(() => replace(body,
      h('div', { class: 'section-head' }, h('h1', {}, 'Image ', i.name, ' ', stateBadge(i.state, stateLabel(i.state))), h('span', { class: 'actions' }, promote, warm, unwarm, rm)),
      removeErr, opBox,
      h('p', { class: 'muted' }, i.state === 'unmanaged' ? 'Promote copies its outside files into banger’s image store and records their digests.'
        : 'Promote re-copies an older managed image’s artifacts, generates a work-seed and records the fingerprint.'),
      h('dl', { class: 'spec' }, rows.map(([key, v]) => [h('dt', {}, key), h('dd', { 'data-key': key }, inert(v || '-'))])),
      h('h2', {}, 'Artifacts'),
      h('div', { class: 'table-wrap' }, h('table', { id: 'image-artifacts', class: 'grid' },
        h('thead', {}, h('tr', {}, ['kind', 'path', 'size', 'sha256'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, (i.artifacts || []).map((a) => h('tr', { 'data-artifact': a.kind },
          h('td', {}, a.kind), h('td', {}, h('code', {}, inert(a.path))), h('td', { class: 'num' }, bytes(a.size)), h('td', {}, h('code', { class: 'digest' }, a.sha256))))))),
      h('h2', {}, 'Warm snapshots'),
      warmed ? h('div', { class: 'table-wrap' }, h('table', { id: 'image-warm-table', class: 'grid' },
        h('thead', {}, h('tr', {}, ['hypervisor', 'vCPUs', 'memory', 'disk', 'size on disk', 'age'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, i.warm.map((w) => h('tr', { 'data-warm-shape': `${w.hypervisor}-${w.vcpus}-${w.memory_mib}` },
          h('td', {}, w.hypervisor + (w.accel ? ` (${w.accel})` : '')), h('td', { class: 'num' }, String(w.vcpus)), h('td', { class: 'num' }, mib(w.memory_mib)),
          h('td', { class: 'num' }, bytes(w.disk_bytes)), h('td', { class: 'num' }, bytes(w.bytes)), h('td', {}, age(w.created_at)))))))
        : h('p', { class: 'muted', id: 'image-warm-none' }, 'None: VMs of this image boot. Warm boots one to readiness and keeps its snapshot, so creates of that shape restore it instead.')));
  }
  const unsub = live.subscribe((kind, key) => {
    if (kind === 'all' || (kind === 'image' && key === imgName)) draw();
  });
  draw();
  return () => {
    unsub();
    ctl.abort();
  };
}
