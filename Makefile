# banger — build, test, install.
#
#   make build        build bin/banger, bin/bangerd, bin/banger-agent
#   make test         unit + integration tests (root tests run when root)
#   make fuzz         every fuzz target for FUZZTIME each (their seeds run in make test)
#   make lint         gofmt + go vet
#   make man          man pages of banger (every command) and bangerd in build/man
#   make install      binaries, man pages, shell completions and systemd units
#                     (not enabled) under $(DESTDIR)$(PREFIX)
#   make uninstall    remove what make install put there (not banger's data)
#   make deb          a Debian package of make install PREFIX=/usr (build/banger_VERSION_amd64.deb)
#   make bench        Go benchmarks (figures, no assertions)
#   make bench-guest  guest access benchmarks over a real VM (root)
#   make quickstart   (root) host packages, install, agents image, a running VM
#   make screenshots  the web UI's screenshots in docs/screenshots (chromium)

PREFIX  ?= /usr/local
BIN     := bin
# What make man and make install generate (man pages, completions).
GEN     := build
# Where make install puts each kind of file; systemd reads units from
# /usr/local/lib/systemd as well as /usr/lib/systemd.
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man/man1
UNITDIR     ?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
PKG     := github.com/bangerdev/banger
# sudo resets PATH, so fall back to the usual Go install location.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

# The version comes from git; the build id is a digest of every input of the
# build, so identical sources give the same id and any change gives a new
# one. The CLI restarts a running bangerd whose build id differs from the
# installed binary's.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
BUILD_ID ?= $(shell { $(GO) version; find . -path ./bin -prune -o -type f \( -name '*.go' -o -name '*.sql' -o -name 'go.mod' -o -name 'go.sum' -o -path './internal/host/web/ui/static/*' \) -print | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -c1-12)
LDFLAGS  := -s -w -X $(PKG)/internal/shared/buildinfo.version=$(VERSION) -X $(PKG)/internal/shared/buildinfo.buildID=$(BUILD_ID)

TEST_FLAGS ?=

.PHONY: all build test test-unit lint man completions install uninstall deb bench bench-guest bench-create clean deps quickstart screenshots fuzz

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/banger ./cmd/banger
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/bangerd ./cmd/bangerd
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/banger-agent ./cmd/banger-agent

# The whole suite. Integration tests build the binaries themselves (with
# their own build ids) and run the daemon in a temporary BANGER_HOME. Packages
# run one at a time (-p 1): the VM tests boot several guests under software
# emulation and should not compete for the CPU with other packages' boots.
test:
	$(GO) test -p 1 -count=1 -timeout 60m $(TEST_FLAGS) ./...
	cd packaging && $(GO) test -count=1 $(TEST_FLAGS) ./...

test-unit:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags crashpoints ./internal/host/crashpoint/ ./cmd/bangerd/
	cd packaging && $(GO) vet ./...

# Fuzz targets, as package:Target. `go test -fuzz` takes one target per
# run, so each runs on its own for FUZZTIME; a finding is written to the
# package's testdata/fuzz/<Target>/, and the run fails once all ran. `make test` runs
# every target's seeds (f.Add and testdata/fuzz) as ordinary tests.
FUZZTIME         ?= 30s
# How long the fuzzer may spend shrinking each new input: Go's default
# (60s) would use a short run's whole time on the first few.
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS := \
	internal/host/config:FuzzLoad \
	internal/host/config:FuzzParseSize \
	internal/host/config:FuzzFormatSize \
	internal/host/names:FuzzValidate \
	internal/host/daemon:FuzzRequestBody \
	internal/host/daemon:FuzzDecodeBody \
	internal/shared/workspace:FuzzExtract \
	internal/shared/workspace:FuzzPlace \
	internal/host/workimport:FuzzBundleHeader \
	internal/host/guest:FuzzDiffSummary \
	internal/shared/initramfs:FuzzReader \
	internal/host/kernelstage:FuzzDecodeXZ \
	internal/host/kernelstage:FuzzXZRoundTrip \
	internal/guest/guestinit:FuzzParseCmdline \
	internal/shared/agentmux:FuzzHostUpgrade \
	internal/shared/agentmux:FuzzHostStream \
	internal/shared/agentmux:FuzzGuestLineMode \
	internal/shared/agentmux:FuzzGuestStream
# Temporary trees go to tmpfs when there is one: Extract and Place syncfs
# what they write, which on a disk-backed /tmp flushes the whole file
# system on every run.
FUZZ_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})

fuzz:
	@failed=; for t in $(FUZZ_TARGETS); do \
		pkg=./$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		TMPDIR=$(FUZZ_TMPDIR) $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg \
			|| failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz findings in:$$failed"; exit 1; fi

# Section-1 pages from the Cobra commands (banger __man, package
# internal/host/manpage), dated by the last commit so that a rebuild of the
# same sources gives the same pages.
man: build
	rm -rf $(GEN)/man
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(BIN)/banger __man $(GEN)/man

completions: build
	@mkdir -p $(GEN)/completions
	$(BIN)/banger completion bash >$(GEN)/completions/banger
	$(BIN)/banger completion zsh >$(GEN)/completions/_banger
	$(BIN)/banger completion fish >$(GEN)/completions/banger.fish

# The systemd units run $(BINDIR)/bangerd; they are installed, not
# enabled (README: Running as a service).
install: build man completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(BIN)/banger $(BIN)/bangerd $(BIN)/banger-agent $(DESTDIR)$(BINDIR)/
	install -m 0644 $(GEN)/man/*.1 $(DESTDIR)$(MANDIR)/
	install -m 0644 $(GEN)/completions/banger $(DESTDIR)$(BASHCOMPDIR)/banger
	install -m 0644 $(GEN)/completions/_banger $(DESTDIR)$(ZSHCOMPDIR)/_banger
	install -m 0644 $(GEN)/completions/banger.fish $(DESTDIR)$(FISHCOMPDIR)/banger.fish
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/bangerd.service >$(DESTDIR)$(UNITDIR)/bangerd.service
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/user/bangerd.service >$(DESTDIR)$(USERUNITDIR)/bangerd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/bangerd.service $(DESTDIR)$(USERUNITDIR)/bangerd.service
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi

# Removes what install put under $(DESTDIR)$(PREFIX), with the same
# variables. banger's data (images, VMs, the store) stays: `banger host
# teardown` and deleting the state and data directories (`banger config
# show`) remove it. A root bangerd that systemd runs is refused: disable it
# first, so that no unit is left pointing at a removed binary.
uninstall:
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && \
		{ systemctl -q is-enabled bangerd.service 2>/dev/null || systemctl -q is-active bangerd.service 2>/dev/null; }; then \
		echo "make uninstall: bangerd.service is enabled or running: run \`systemctl disable --now bangerd\` first (and \`systemctl --user disable --now bangerd\` as each user who enabled the user unit)" >&2; exit 1; fi
	rm -f $(DESTDIR)$(BINDIR)/banger $(DESTDIR)$(BINDIR)/bangerd $(DESTDIR)$(BINDIR)/banger-agent
	rm -f $(DESTDIR)$(MANDIR)/banger.1 $(DESTDIR)$(MANDIR)/banger-*.1 $(DESTDIR)$(MANDIR)/bangerd.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/banger $(DESTDIR)$(ZSHCOMPDIR)/_banger $(DESTDIR)$(FISHCOMPDIR)/banger.fish
	rm -f $(DESTDIR)$(UNITDIR)/bangerd.service $(DESTDIR)$(USERUNITDIR)/bangerd.service
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
	@echo "banger's binaries, man pages, completions and units are removed; its data is not (see banger config show)"

# The Debian package: make install into a staging tree with PREFIX=/usr,
# packed by packaging/mkdeb (nfpm, in a module of its own) with the
# runtime dependencies and the maintainer scripts. DEB names the file.
DEB ?= $(GEN)/banger_$(VERSION)_amd64.deb
deb:
	rm -rf $(GEN)/deb-root
	$(MAKE) install DESTDIR=$(abspath $(GEN))/deb-root PREFIX=/usr GEN=$(GEN)
	cd packaging && $(GO) run ./mkdeb -root $(abspath $(GEN))/deb-root -version $(VERSION) -out $(abspath $(DEB))

bench:
	$(GO) test -run '^$$' -bench . -benchtime 200x ./client ./internal/host/diskclone

# Guest access figures over a real VM (root; boots one VM per benchmark):
# workspace prepare MB/s, attach and exec round trips.
bench-guest:
	$(GO) test -run '^$$' -bench 'Workspace|RoundTrip' -benchtime 20x ./internal/host/e2e

# Per-stage create timings over real VMs: make bench-create ARGS="--runs 5"
bench-create: build
	$(BIN)/banger bench create $(ARGS)

clean:
	rm -rf $(BIN) $(GEN)

# The README's screenshots of the web UI at 1280x800: the dashboard, a VM's
# page and the create form, drawn by headless chromium from a bangerd with
# the fake hypervisor and a few VMs (no root, no QEMU). Needs chromium
# (make deps); fails, rather than skips, without it.
screenshots:
	BANGER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -v -run '^TestScreenshots$$' ./internal/host/web/uitest

deps:
	scripts/install-deps.sh

# One command from a fresh Debian/Ubuntu host to a running VM with the
# agents inside: host packages, install, doctor, a Debian image, the agents
# image built on it, and a VM (create prints how to get in). Re-running
# reuses the images.
quickstart: deps install
	$(PREFIX)/bin/banger doctor || true
	$(PREFIX)/bin/banger image show debian-bookworm >/dev/null 2>&1 || $(PREFIX)/bin/banger image bootstrap debian
	$(PREFIX)/bin/banger image show agents >/dev/null 2>&1 || $(PREFIX)/bin/banger image build --from debian-bookworm --name agents --preset agents
	@# This checkout at /root/repo when it is a git clone; a plain VM otherwise.
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		$(PREFIX)/bin/banger vm run . --image agents; \
	else \
		$(PREFIX)/bin/banger vm create --image agents; \
	fi
