// diffstat.js — how a VM's workspace diff reads (GET
// /v1/vms/NAME/workspace/diff, the layout of `banger vm diff`). Pure
// functions: every string they return is the guest's text or made from it,
// and the page inserts it only as text.

// PATCH_MAX bounds the patch the page reads and shows (`banger vm diff
// NAME -p` prints it whole).
export const PATCH_MAX = 8 << 20;

// shortID is a commit id's first 12 digits.
export function shortID(id) {
  return String(id || '').slice(0, 12);
}

// sentFrom says where a workspace came from: "/root/repo sent from
// /home/me/proj at 0123456789ab (git mode)".
export function sentFrom(ws) {
  if (!ws) return 'nothing was sent into this VM’s workspace';
  return `${ws.dir} sent from ${ws.host_path}${ws.head ? ` at ${shortID(ws.head)}` : ''} (${ws.mode} mode)`;
}

// commitsHeading heads the list of the guest's commits.
export function commitsHeading(n) {
  if (n === 0) return 'No commits in the guest';
  return n === 1 ? '1 commit in the guest' : `${n} commits in the guest`;
}

// fileRows are the diffstat table's rows: [status, added, deleted, path],
// a rename as "old => new", a binary file's counts as "bin" and "".
export function fileRows(files) {
  return (files || []).map((f) => [
    String(f.status || '').replace(/_/g, ' '),
    f.binary ? 'bin' : String(f.added ?? 0),
    f.binary ? '' : String(f.deleted ?? 0),
    f.status === 'renamed' ? `${f.old_path} => ${f.path}` : f.path,
  ]);
}

// totals is git's summary line of a diffstat.
export function totals(d) {
  const n = (d.files || []).length;
  const pl = (k, one, many) => `${k} ${k === 1 ? one : many}`;
  return `${pl(n, 'file', 'files')} changed, ${pl(d.added || 0, 'insertion', 'insertions')}(+), ${pl(d.deleted || 0, 'deletion', 'deletions')}(-)`;
}

// cutNote says a patch was cut at max bytes and how to see it whole.
export function cutNote(vm, max = PATCH_MAX) {
  return `The patch is longer than the ${max >> 20} MiB shown here: \`banger vm diff ${vm} -p\` prints it whole.`;
}
