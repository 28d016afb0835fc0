// create.js — the create-VM form: every option of `banger vm create`,
// each input named by its api.CreateVMRequest field; then the operation's
// live stages with a cancel button.
//
// Test hooks: #create-form, inputs [name="name|image|vcpus|memory_mib|
// disk_bytes|hypervisor|cold"], errors [data-error-for="FIELD"], #create-submit,
// #create-progress (the operation: #op-stages li[data-stage="…"],
// #op-cancel, #op-state), #create-result (a link to the new VM).

import { post } from '../api.js';
import { h, replace } from '../dom.js';
import { clearErrors, field, fieldError, formError, showError } from '../forms.js';
import { parseSize } from '../format.js';
import { followOperation } from '../oplive.js';

export const name = 'create';

// LABELS are the words a field error uses instead of the JSON name.
const LABELS = { name: 'name', image: 'image', vcpus: 'vCPUs', memory_mib: 'memory', disk_bytes: 'disk', hypervisor: 'hypervisor', cold: 'cold boot' };

export function mount(root, { live }) {
  const ctl = new AbortController();
  const imageSel = h('select', { name: 'image' });
  const f = {
    name: h('input', { name: 'name', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'generated, e.g. brisk-otter', pattern: '[a-z][a-z0-9-]{0,62}' }),
    image: imageSel,
    vcpus: h('input', { name: 'vcpus', type: 'number', inputmode: 'numeric', min: 1, step: 1, placeholder: 'config default' }),
    memory_mib: h('input', { name: 'memory_mib', type: 'text', placeholder: 'config default, e.g. 2GiB' }),
    disk_bytes: h('input', { name: 'disk_bytes', type: 'text', placeholder: 'config default, e.g. 16GiB' }),
    hypervisor: h('select', { name: 'hypervisor' },
      h('option', { value: '' }, 'default (config, or the best this host runs)'),
      h('option', { value: 'qemu' }, 'qemu'),
      h('option', { value: 'firecracker' }, 'firecracker')),
    cold: h('input', { name: 'cold', type: 'checkbox' }),
  };
  const submit = h('button', { type: 'submit', id: 'create-submit', class: 'primary' }, 'Create VM');
  const progress = h('div', { id: 'create-progress' });
  const result = h('div', { id: 'create-result', role: 'status' });
  const form = h('form', { id: 'create-form', novalidate: true, 'aria-labelledby': 'create-h' },
    field('Name', f.name, { hint: "lowercase letters, digits and '-', starting with a letter; empty: a generated name" }),
    field('Image', f.image, { hint: 'empty: the newest ready image' }),
    field('vCPUs', f.vcpus),
    field('Memory', f.memory_mib, { hint: 'a size such as 2GiB or 512MiB; a plain number is MiB' }),
    field('Disk (/root)', f.disk_bytes, { hint: 'the work disk, a size such as 16GiB; it grows sparsely' }),
    field('Hypervisor', f.hypervisor),
    field('Cold boot', f.cold, { hint: 'boot even when the image has a warm snapshot of this shape (banger image warm), which is restored instead' }),
    formError('create-form-error'),
    h('div', { class: 'actions' }, submit));
  root.append(h('h1', { id: 'create-h' }, 'Create a VM'), form, progress, result);

  function drawImages() {
    const keep = imageSel.value;
    const imgs = [...live.images.values()].sort((a, b) => a.name.localeCompare(b.name));
    replace(imageSel, h('option', { value: '' }, 'default (newest ready image)'),
      imgs.map((i) => h('option', { value: i.name }, `${i.name}${i.state !== 'ready' ? ` (${i.state})` : ''}`)));
    imageSel.value = keep;
    if (imageSel.value !== keep) {
      // The image chosen is gone from the list; keep it as typed.
      imageSel.append(h('option', { value: keep }, `${keep} (not listed)`));
      imageSel.value = keep;
    }
  }
  const unsub = live.subscribe((kind) => {
    if (kind === 'image' || kind === 'all') drawImages();
  });
  drawImages();

  // request reads the form into an api.CreateVMRequest, or throws a
  // field error about what cannot be read.
  function request() {
    const req = {};
    const v = (k) => f[k].value.trim();
    if (v('name')) req.name = v('name');
    if (v('image')) req.image = v('image');
    if (v('vcpus')) {
      const n = Number(v('vcpus'));
      if (!Number.isInteger(n)) throw fieldError('vcpus', `vcpus "${v('vcpus')}" is not a whole number`);
      req.vcpus = n;
    }
    if (v('memory_mib')) {
      try {
        const b = parseSize(v('memory_mib'), 1024 * 1024);
        if (b % (1024 * 1024) !== 0 || b <= 0) throw new Error(`"${v('memory_mib')}" is not a whole number of MiB, e.g. 2GiB`);
        req.memory_mib = b / (1024 * 1024);
      } catch (err) {
        throw fieldError('memory_mib', `memory_mib ${err.message}`);
      }
    }
    if (v('disk_bytes')) {
      try {
        req.disk_bytes = parseSize(v('disk_bytes'), 1);
      } catch (err) {
        throw fieldError('disk_bytes', `disk_bytes ${err.message}`);
      }
    }
    if (v('hypervisor')) req.hypervisor = v('hypervisor');
    if (f.cold.checked) req.cold = true;
    return req;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    replace(result);
    let req;
    try {
      req = request();
    } catch (err) {
      showError(form, err, LABELS);
      return;
    }
    submit.disabled = true;
    try {
      const op = await post('/v1/vms', req, { signal: ctl.signal });
      const done = await followOperation(progress, op, { signal: ctl.signal });
      if (done.state === 'succeeded') {
        const vmName = done.result?.name || req.name || done.target;
        replace(result, h('p', {}, `Created VM ${vmName}. `, h('a', { href: `/vm/${encodeURIComponent(vmName)}`, id: 'create-open-vm' }, `Open ${vmName}`)));
      } else if (done.error) {
        // A field error found during the operation goes to its field too.
        showError(form, done.error, LABELS);
      }
    } catch (err) {
      if (err.name !== 'AbortError') showError(form, err, LABELS);
    } finally {
      submit.disabled = false;
    }
  });
  f.name.focus();
  return () => {
    unsub();
    ctl.abort();
  };
}
