// Command sleepinit is a test /init that never prints the probe marker and
// never exits, like a guest that hangs: the probe must time out on it.
package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("sleepinit: sleeping forever")
	for {
		time.Sleep(time.Hour)
	}
}
