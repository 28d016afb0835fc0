package hostnet

import (
	"context"
	"fmt"
	"strings"
)

// Setup makes the host match cfg: the bridge with the gateway address, the
// nftables table, IPv4 forwarding, and cfg.PoolSize idle TAPs (TAPs a
// hypervisor holds open count as used). It never deletes a TAP, so it is
// safe while VMs run. It backs `banger host setup` and a root bangerd's
// start, and is a no-op when everything is in place.
func Setup(ctx context.Context, cfg Config, h Host) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return converge(ctx, cfg, h, Want{IdleTAPs: cfg.PoolSize}, "setting up host networking")
}

// Teardown removes every pool TAP, the bridge and banger's nftables table.
// It leaves net.ipv4.ip_forward alone: other software may rely on it, and
// banger cannot know whether it was on before. It backs `banger host
// teardown`; run it once no VM is left, since it deletes TAPs in use too.
func Teardown(ctx context.Context, cfg Config, h Host) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return converge(ctx, cfg, h, Want{Teardown: true}, "tearing down host networking")
}

// converge observes, plans, applies and verifies: after Apply a fresh
// Observe must plan nothing, or the host is fighting back.
func converge(ctx context.Context, cfg Config, h Host, want Want, what string) error {
	st, err := h.Observe(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	steps := Plan(cfg, st, want)
	if len(steps) == 0 {
		return nil
	}
	if err := h.Apply(ctx, steps); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if st, err = h.Observe(ctx, cfg); err != nil {
		return fmt.Errorf("%s: checking the result: %w", what, err)
	}
	if left := Plan(cfg, st, want); len(left) > 0 {
		return fmt.Errorf("%s: the host still differs after applying every step (does something else manage %s or nftables table inet %s?): still to do: %s",
			what, cfg.Bridge, cfg.table(), joinSteps(left))
	}
	return nil
}

func joinSteps(steps []Step) string {
	s := make([]string, len(steps))
	for i, st := range steps {
		s[i] = st.String()
	}
	return strings.Join(s, "; ")
}
