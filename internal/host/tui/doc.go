// Package tui is `banger tui`: a Bubble Tea program for browsing and
// operating VMs, sessions, images and operations. It only gathers input and
// renders (STYLE.md rule 11): the daemon is reached through package client
// and the behaviour every front end shares (attach with replay, stop then
// kill, the reconnecting event feed) through package frontend.
//
// # Data
//
// One [Store] holds what the screens show. It is filled by one list call per
// kind when the program starts (and again after the event feed says its
// history is gone, a Reconnected{Reset: true}), then kept current by the
// daemon-wide event feed alone; VM figures come from one GET /v1/stats per
// refresh for every VM at once. No view polls a single VM.
//
// # Screens
//
// The [App] draws a tab bar, the active [View]'s body, a status line and a
// help bar of at most two lines (? shows every key). Each tab is a View
// (see view.go for the contract); the tabs are registered in order in
// tabs.go. A view keeps its own sub-screens (a detail page, a form, a
// confirmation) and says which keys it takes in Keys.
//
// The VMs tab (vms.go) is the table with its filter and the create form
// (createform.go, on form.go); p pauses or resumes a VM, f forks it after
// asking the new name, and x on a paused VM asks first, since its saved
// state is lost (vmask.go). enter opens a VM's detail (vmdetail.go)
// with three panes: Overview (spec, figures, the stages of its last
// create, start or restart), Console (the serial console, followed) and
// Sessions (sessions.go: start form, attach, output, stop, kill, remove).
// An attach or ssh hands the terminal over with tea.Exec (attach.go) and
// takes it back when it ends. D, on the table or a VM's overview, opens
// what changed in its workspace since it was sent (vmdiff.go, `banger vm
// diff`): the guest's commits, the uncommitted flag and a table of the
// changed files, with p for the whole patch (read up to 8 MiB).
//
// Text that came from a guest or from a daemon error is shown through
// termsafe (a guest is hostile, SPEC §8); NO_COLOR turns colours off but
// keeps bold and reverse, so the selection stays visible.
package tui
