package tui

import (
	"math/rand/v2"

	"github.com/bangerdev/banger/internal/host/names"
)

// generatedName proposes a free VM name with banger's generator, or ""
// when every try collided (the daemon then picks one).
func generatedName(taken func(string) bool) string {
	g := names.NewGenerator(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	name, err := g.Generate(func(n string) (bool, error) { return taken(n), nil })
	if err != nil {
		return ""
	}
	return name
}
