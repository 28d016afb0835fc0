// Command foreignserver stands in for a socket another local user planted
// at banger's socket path: it serves HTTP on the bound Unix socket it
// inherits as fd 3, answers every request with a plausible daemon status,
// and prints each request it receives, so a test can tell whether the
// banger client sent it anything.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
)

func main() {
	if err := syscall.Listen(3, 8); err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	l, err := net.FileListener(os.NewFile(3, "inherited"))
	if err != nil {
		fmt.Println("listener:", err)
		os.Exit(1)
	}
	fmt.Println("listening")
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("request %s %s\n", r.Method, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"version":"e2e","build_id":"e2e-a","pid":%d,"uid":%d}`, os.Getpid(), os.Getuid())
	}))
}
