// Command mkdeb packs a staged install of banger (`make install
// DESTDIR=stage PREFIX=/usr`: the three binaries, man pages, shell
// completions, systemd units) into a Debian package with its runtime
// dependencies and maintainer scripts. `make deb` runs it. It lives in a
// module of its own so that nfpm and what it needs never enter banger's
// own build.
//
//	go run ./mkdeb -root ../build/deb-root -version 0.3.0-12-gabc -out ../build/banger.deb
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	root := flag.String("root", "", "the staged install tree (DESTDIR of make install PREFIX=/usr)")
	version := flag.String("version", "", "the package version (git describe, without a leading v)")
	out := flag.String("out", "banger.deb", "the package file to write")
	flag.Parse()
	if *root == "" || *version == "" {
		fmt.Fprintln(os.Stderr, "mkdeb: -root and -version are required, e.g. mkdeb -root build/deb-root -version 0.3.0")
		os.Exit(2)
	}
	if err := writeDeb(*root, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}
