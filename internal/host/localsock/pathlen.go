package localsock

// MaxPath is the longest path a Unix socket address holds: sun_path is
// 108 bytes with the terminating NUL. A longer path can be neither bound
// nor dialled, so whoever chooses where sockets go (the config's
// directories, the hypervisor drivers) holds paths to it.
const MaxPath = 107
