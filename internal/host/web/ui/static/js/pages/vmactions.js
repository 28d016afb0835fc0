// vmactions.js — start, stop, restart, pause, resume, fork and delete of
// a VM, with the confirmation each destructive one asks for (a stop of a
// paused VM discards its saved state) and the fork's name. The dashboard
// and the VM page both use these buttons.

import { del, enc, post } from '../api.js';
import { h } from '../dom.js';
import { busy, confirmDialog, flash, promptDialog } from '../forms.js';

// vmButtons returns the action buttons for vm: ids vm-NAME-ACTION and
// data-action="start|stop|restart|pause|resume|fork|delete". Start of a
// paused VM resumes it. onDeleted runs after a delete.
export function vmButtons(vm, { onDeleted } = {}) {
  const n = vm.name;
  const running = vm.state === 'running';
  const paused = vm.state === 'paused';
  const creating = vm.state === 'creating' || vm.state === 'deleting';
  const btn = (action, label, fn, { danger = false, disabled = false } = {}) => {
    const b = h('button', { type: 'button', id: `vm-${n}-${action}`, 'data-action': action, class: danger ? 'danger' : '', 'aria-label': `${label} VM ${n}`, disabled },
      label);
    b.addEventListener('click', () => busy(b, fn));
    return b;
  };
  return h('span', { class: 'actions' },
    btn('start', 'Start', async () => {
      const op = await post(`/v1/vms/${enc(n)}/start`);
      flash(`${paused ? 'resuming' : 'starting'} ${n} (operation ${op.id})`);
    }, { disabled: running || creating }),
    btn('stop', 'Stop', async () => {
      const q = paused ? `Stop paused VM ${n}? Its saved state is discarded: it stops as after a power cut.` : `Stop VM ${n}? Its sessions end.`;
      if (!(await confirmDialog(q, 'Stop'))) return;
      await post(`/v1/vms/${enc(n)}/stop`);
      flash(`stopped ${n}`);
    }, { disabled: !running && !paused }),
    btn('pause', 'Pause', async () => {
      const op = await post(`/v1/vms/${enc(n)}/pause`);
      flash(`pausing ${n}: its state goes to disk (operation ${op.id})`);
    }, { disabled: !running }),
    btn('resume', 'Resume', async () => {
      const op = await post(`/v1/vms/${enc(n)}/resume`);
      flash(`resuming ${n} (operation ${op.id})`);
    }, { disabled: !paused }),
    btn('fork', 'Fork', async () => {
      const name = await promptDialog(`Fork VM ${n}: a copy of its memory and disks, with its own identity. Name of the new VM (empty: a generated one)?`, 'Fork', { placeholder: `${n}-2` });
      if (name === null) return;
      const op = await post(`/v1/vms/${enc(n)}/fork`, name ? { name } : {});
      flash(`forking ${n}${name ? ` into ${name}` : ''} (operation ${op.id})`);
    }, { disabled: !running }),
    btn('restart', 'Restart', async () => {
      if (!(await confirmDialog(`Restart VM ${n}? Its sessions end.`, 'Restart'))) return;
      const op = await post(`/v1/vms/${enc(n)}/restart`);
      flash(`restarting ${n} (operation ${op.id})`);
    }, { disabled: !running }),
    btn('delete', 'Delete', async () => {
      if (!(await confirmDialog(`Delete VM ${n}? Its disks are removed; this cannot be undone.`, 'Delete'))) return;
      await del(`/v1/vms/${enc(n)}`);
      flash(`deleted ${n}`);
      onDeleted?.();
    }, { danger: true, disabled: creating }));
}
