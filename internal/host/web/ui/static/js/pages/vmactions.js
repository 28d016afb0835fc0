// vmactions.js — start, stop, restart and delete of a VM, with the
// confirmation each destructive one asks for. The dashboard and the VM
// page both use these buttons.

import { del, enc, post } from '../api.js';
import { h } from '../dom.js';
import { busy, confirmDialog, flash } from '../forms.js';

// vmButtons returns the action buttons for vm: ids vm-NAME-ACTION and
// data-action="start|stop|restart|delete". onDeleted runs after a delete.
export function vmButtons(vm, { onDeleted } = {}) {
  const n = vm.name;
  const running = vm.state === 'running';
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
      flash(`starting ${n} (operation ${op.id})`);
    }, { disabled: running || creating }),
    btn('stop', 'Stop', async () => {
      if (!(await confirmDialog(`Stop VM ${n}? Its sessions end.`, 'Stop'))) return;
      await post(`/v1/vms/${enc(n)}/stop`);
      flash(`stopped ${n}`);
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
