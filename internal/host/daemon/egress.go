package daemon

import (
	"net/http"

	"github.com/bangerdev/banger/api"
)

// egressRoutes are a VM's egress policy: GET shows it (with ?log=true its
// recent refusals), PUT replaces it, in force at once on a running VM.
func (d *Daemon) egressRoutes(handle func(pattern string, h func(http.ResponseWriter, *http.Request) error)) {
	v := "/" + api.Version
	handle("GET "+v+"/vms/{name}/egress", d.getEgress)
	handle("PUT "+v+"/vms/{name}/egress", d.putEgress)
}

func (d *Daemon) getEgress(w http.ResponseWriter, r *http.Request) error {
	st, err := d.vms.EgressStatus(r.Context(), r.PathValue("name"), r.URL.Query().Get("log") == "true")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (d *Daemon) putEgress(w http.ResponseWriter, r *http.Request) error {
	var p api.EgressPolicy
	if err := decodeBody(r, &p); err != nil {
		return err
	}
	v, err := d.vms.SetEgress(r.Context(), r.PathValue("name"), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.EgressStatus{Policy: v.EgressPolicy()})
}
