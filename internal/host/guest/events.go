package guest

import "github.com/bangerdev/banger/api"

// changed tells OnChange the session's recorded state.
func (s *Service) changed(ses api.Session) {
	if s.OnChange != nil {
		s.OnChange(api.Event{Kind: api.EventSession, ID: ses.ID, Name: ses.Name, VM: ses.VM, SessionState: &ses})
	}
}

// removed tells OnChange that the session's record is gone.
func (s *Service) removed(vmName string, ses api.Session) {
	if s.OnChange != nil {
		s.OnChange(api.Event{Kind: api.EventSession, ID: ses.ID, Name: ses.Name, VM: vmName, Removed: true})
	}
}
