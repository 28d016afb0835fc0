// Package scripts holds banger's set-up scripts (host packages, the Go
// toolchain, the web assets, the leak check); its tests run them against
// stand-ins for the network.
package scripts
