# Makefile — builds dtmq, runs it, tests it.
#
#   make            build bin/dtmq (optimised)
#   make run        install missing Debian packages, build, start dtmq on its
#                   embedded defaults (SQLite file + in-process Kafka)
#   make test       install what the tests need, start real Kafka, MongoDB-protocol servers
#                   and PostgreSQL on 127.0.0.1, run every test, stop them; last line
#                   "N passed, N failed"
#   make check      build the sanitizer flavour and the test binaries only
#   make soak       the fault suite with larger counts (tests/fault/soak.env)
#   make bench      throughput and latency against ceilings; docs/benchmarks.md
#   make deps       install the Debian packages the build needs
#   make install    bin/dtmq, libdtmq.a (the C SDK), headers, dtmq.pc and
#                   dtmq-barrier.pc (PREFIX, DESTDIR)
#   make clean
#
# Three flavours from the same sources: build/release (bin/dtmq), build/asan
# (AddressSanitizer + UndefinedBehaviorSanitizer; dtmq and every test binary)
# and build/valgrind (no sanitizers, -O0; what make test runs under valgrind).
# Every library is found through pkg-config.
#
# Knobs: B=DIR builds into DIR instead of build/ (the binary then goes to
# DIR/bin/dtmq); CC=... picks the compiler (gcc by default); STRICT=1 makes
# warnings errors in the release flavour too (make test sets it; the asan and
# valgrind flavours always have -Werror).

B ?= build
# bin/dtmq for the default build directory; $(B)/bin/dtmq for any other, so
# two build directories never overwrite each other's binary.
BIN ?= $(if $(filter build,$(B)),bin,$(B)/bin)

PKGS      := rdkafka libmongoc-1.0 jansson libcurl libmicrohttpd sqlite3 yaml-0.1 libpq
TEST_PKGS := check

# make's built-in default for CC is "cc", so "CC ?= gcc" would never apply.
ifeq ($(origin CC),default)
CC := gcc
endif
# -Werror for the development and CI flavours (asan, valgrind, fuzz) always;
# for the release flavour only when asked (STRICT=1, as make test does), so a
# user's build with a newer compiler is not stopped by a new warning.
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
STRICT    ?= 0
REL_WERROR := $(if $(filter 1,$(STRICT)),-Werror)
# Includes go through these roots, never through "../": the daemon's own parts
# by name (broker/), the edges by folder ("daemon/store/store.h",
# "libdtmq/common/kafka_producer.h"), libdtmq's public headers as a service
# sees them (<dtmq/dtmq_client.h>), and the test helpers by name.
LIBDTMQ_INC := connectors/libdtmq/include
INCS      := -Ibroker -Iconnectors -I$(LIBDTMQ_INC)
TEST_INCS := -Itests/lib
BASEFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) $(INCS) -pthread -MMD -MP

# pkg-config runs once, on first use (not at all for targets that compile
# nothing, such as make deps before the packages are there).
PKG_CFLAGS  = $(eval PKG_CFLAGS := $(call pkg,--cflags,$(PKGS)))$(PKG_CFLAGS)
PKG_LIBS    = $(eval PKG_LIBS := $(call pkg,--libs,$(PKGS)) -lm)$(PKG_LIBS)
TEST_CFLAGS = $(eval TEST_CFLAGS := $(call pkg,--cflags,$(TEST_PKGS)))$(TEST_CFLAGS)
TEST_LIBS   = $(eval TEST_LIBS := $(call pkg,--libs,$(TEST_PKGS)))$(TEST_LIBS)
pkg = $(or $(shell pkg-config $(1) $(2) 2>/dev/null),$(error pkg-config cannot find one of: $(2) (make deps installs them)))

REL_FLAGS  := -O2 $(REL_WERROR)
ASAN_FLAGS := -Werror -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
VG_FLAGS   := -Werror -O0

# Everything but main.c goes into a static library the tests link too.
CORE_SRC := $(sort $(shell find broker connectors -name '*.c' ! -path broker/main.c))
# libdtmq: what business services link (connectors/libdtmq/: client/,
# worker/, barrier/, dtmq.c what they share, common/ what the daemon links
# too); its public
# headers are the folder include/dtmq/ under it, installed as they are.
LIBDTMQ_SRC  := $(sort $(shell find connectors/libdtmq -name '*.c'))
LIBDTMQ_HDR  := $(sort $(wildcard $(LIBDTMQ_INC)/dtmq/*.h))
LIBDTMQ_REL_OBJ  = $(patsubst %.c,$(B)/release/%.o,$(LIBDTMQ_SRC))
LIBDTMQ_ASAN_OBJ = $(patsubst %.c,$(B)/asan/%.o,$(LIBDTMQ_SRC))
TEST_LIB_SRC := $(sort $(wildcard tests/lib/*.c))
TEST_SRC := $(sort $(wildcard tests/unit/*.c tests/store/*.c tests/integration/*.c))
TEST_BINS := $(patsubst tests/%.c,$(B)/asan/tests/%,$(TEST_SRC))

REL_OBJ  := $(patsubst %.c,$(B)/release/%.o,$(CORE_SRC))
ASAN_OBJ := $(patsubst %.c,$(B)/asan/%.o,$(CORE_SRC))
TEST_LIB_OBJ := $(patsubst %.c,$(B)/asan/%.o,$(TEST_LIB_SRC))
VG_OBJ   := $(patsubst %.c,$(B)/valgrind/%.o,$(CORE_SRC))
VG_TEST_LIB_OBJ := $(patsubst %.c,$(B)/valgrind/%.o,$(TEST_LIB_SRC))
VG_TEST_BINS := $(patsubst tests/%.c,$(B)/valgrind/tests/%,$(TEST_SRC))

.PHONY: all run test check deps clean services-up services-down
all: $(BIN)/dtmq

deps:
	@bash docker/install-deps.sh

$(B)/release/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(REL_FLAGS) $(PKG_CFLAGS) -c $< -o $@

$(B)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(B)/valgrind/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(VG_FLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(B)/release/libdtmqcore.a: $(REL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/asan/libdtmqcore.a: $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/valgrind/libdtmqcore.a: $(VG_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/dtmq: $(B)/release/broker/main.o $(B)/release/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(REL_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/asan/dtmq: $(B)/asan/broker/main.o $(B)/asan/libdtmqcore.a
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/asan/tests/%: tests/%.c $(TEST_LIB_OBJ) $(B)/asan/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(TEST_INCS) $(ASAN_FLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $< $(TEST_LIB_OBJ) \
		$(B)/asan/libdtmqcore.a $(PKG_LIBS) $(TEST_LIBS) -o $@

$(B)/valgrind/dtmq: $(B)/valgrind/broker/main.o $(B)/valgrind/libdtmqcore.a
	$(CC) $(BASEFLAGS) $(VG_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/valgrind/tests/%: tests/%.c $(VG_TEST_LIB_OBJ) $(B)/valgrind/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(TEST_INCS) $(VG_FLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $< $(VG_TEST_LIB_OBJ) \
		$(B)/valgrind/libdtmqcore.a $(PKG_LIBS) $(TEST_LIBS) -o $@

# The worked examples (docs/examples/, tests/examples/*.sh), built as a user
# would build them: with only libdtmq's public include folder (the layout
# `make install` installs, <dtmq/...>) and linked against libdtmq.a, plus the
# examples' shared helpers. None of the daemon's include roots.
EXAMPLE_SRC   := $(sort $(filter-out docs/examples/common/%,$(wildcard docs/examples/*/*.c)))
EXAMPLE_BINS  := $(patsubst docs/examples/%.c,$(B)/asan/examples/%,$(EXAMPLE_SRC))
EXAMPLE_OBJ   := $(B)/asan/examples/common/example_http.o $(B)/asan/examples/common/example_pg.o
EXAMPLE_FLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) -pthread -MMD -MP -I$(LIBDTMQ_INC)

$(B)/asan/examples/common/%.o: docs/examples/common/%.c
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_FLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) -c $< -o $@

$(B)/asan/examples/%: docs/examples/%.c $(EXAMPLE_OBJ) $(B)/asan/libdtmq.a
	@mkdir -p $(dir $@)
	$(CC) $(EXAMPLE_FLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) $< $(EXAMPLE_OBJ) \
		$(B)/asan/libdtmq.a $(PKG_LIBS) -o $@

check: $(B)/asan/dtmq $(BIN)/dtmq $(TEST_BINS) $(B)/valgrind/dtmq $(VG_TEST_BINS) $(EXAMPLE_BINS)

run: deps
	@$(MAKE) --no-print-directory $(BIN)/dtmq
	./$(BIN)/dtmq

test:
	@bash docker/install-deps.sh --test
	@bash tests/preflight/preflight.sh
	@bash tests/run.sh

# ---- the fast inner loop: the unit tests alone, one binary, one test ------
#   make check-unit      build and run tests/unit/* only (no services);
#                        last line "N passed, N failed"
#   make test-one T=DIR/BINARY[:TEST] [KIND=sqlite|mongodb|secantus]
#                        build and run one test binary (unit/test_config,
#                        store/conformance, integration/test_saga...) or its
#                        one test TEST; starts the test services when needed
#                        and leaves them up (make services-down stops them);
#                        KIND: the store of the per-store suites, sqlite by
#                        default (secantus: store suites only).
#                        Bodies: tests/check-unit.sh, tests/test-one.sh
UNIT_BINS := $(filter $(B)/asan/tests/unit/%,$(TEST_BINS))
TEST_ONE_BIN := $(firstword $(subst :, ,$(T)))
KIND ?= sqlite

.PHONY: check-unit test-one
check-unit: $(UNIT_BINS)
	@B='$(B)' bash tests/check-unit.sh

test-one: $(if $(TEST_ONE_BIN),$(B)/asan/tests/$(TEST_ONE_BIN) \
		$(if $(filter unit/%,$(TEST_ONE_BIN)),,$(B)/asan/dtmq))
	@B='$(B)' KIND='$(KIND)' bash tests/test-one.sh '$(T)'
# ---- end of the fast inner loop -------------------------------------------

services-up:
	@bash tests/services/services.sh up

services-down:
	@bash tests/services/services.sh down

# ---- libdtmq: the C SDK as a static library, and make install -------------
#   make libdtmq                      $(B)/release/libdtmq.a
#   make install [PREFIX=/usr/local] [DESTDIR=]
#                                     bin/dtmq, lib/libdtmq.a, include/dtmq/*.h
#                                     (dtmq.h and the headers that include it),
#                                     lib/pkgconfig/{dtmq,dtmq-barrier}.pc
#   make uninstall                    removes exactly those
PREFIX  ?= /usr/local
DESTDIR ?=

DTMQ_VERSION := $(shell sed -n 's/^\#define DTMQ_VERSION "\(.*\)"/\1/p' broker/version.h)
# Two pkg-config files: dtmq (client and worker: libcurl, jansson, rdkafka)
# and dtmq-barrier (dtmq plus the barrier's databases, libpq and libmongoc),
# so a service that only drives transactions needs neither database library.
LIBDTMQ_PC   := dtmq dtmq-barrier

.PHONY: libdtmq install uninstall
libdtmq: $(B)/release/libdtmq.a

$(B)/release/libdtmq.a: $(LIBDTMQ_REL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/asan/libdtmq.a: $(LIBDTMQ_ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

install: $(BIN)/dtmq $(B)/release/libdtmq.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
		$(DESTDIR)$(PREFIX)/include/dtmq
	install -m 755 $(BIN)/dtmq $(DESTDIR)$(PREFIX)/bin/dtmq
	install -m 644 $(B)/release/libdtmq.a $(DESTDIR)$(PREFIX)/lib/libdtmq.a
	install -m 644 $(LIBDTMQ_HDR) $(DESTDIR)$(PREFIX)/include/dtmq/
	for pc in $(LIBDTMQ_PC); do \
		sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(DTMQ_VERSION)|g' \
			connectors/libdtmq/$$pc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc && \
		chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dtmq $(DESTDIR)$(PREFIX)/lib/libdtmq.a \
		$(addprefix $(DESTDIR)$(PREFIX)/lib/pkgconfig/,$(addsuffix .pc,$(LIBDTMQ_PC))) \
		$(addprefix $(DESTDIR)$(PREFIX)/include/dtmq/,$(notdir $(LIBDTMQ_HDR)))
	-rmdir $(DESTDIR)$(PREFIX)/include/dtmq 2>/dev/null

clean:
	rm -rf $(B) $(BIN)

# .incbin files are invisible to -MMD: rebuild the embedded schemas when one changes.
$(foreach f,release asan valgrind,$(B)/$(f)/connectors/daemon/schema/schemas_embedded.o): $(shell find schemas -name '*.schema.json')

# .incbin files are invisible to -MMD: rebuild the embedded admin page when one of its files changes.
$(foreach f,release asan valgrind,$(B)/$(f)/broker/admin_assets.o): $(wildcard broker/admin/*)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# ---- benchmarks: make bench ------------------------------------------------
#   make bench        installs what it needs, builds the release flavour and the
#                     programs of tests/bench/ into $(B)/release/bench/, starts
#                     Kafka and the MongoDB-protocol server on their own ports, runs every scenario
#                     bounded in time, prints a table and writes docs/benchmarks.md
#                     (tests/bench/run.sh; knobs: DTMQ_BENCH_SECONDS, ...)
BENCH_SRC  := $(sort $(filter-out tests/bench/bench_common.c,$(wildcard tests/bench/bench_*.c)))
BENCH_BINS := $(patsubst tests/bench/%.c,$(B)/release/bench/%,$(BENCH_SRC))
BENCH_OBJ  := $(B)/release/tests/bench/bench_common.o

.PHONY: bench bench-build
bench:
	@bash docker/install-deps.sh --test
	@B=$(B) bash tests/bench/run.sh

bench-build: $(B)/release/dtmq $(BENCH_BINS)

$(B)/release/dtmq: $(B)/release/broker/main.o $(B)/release/libdtmqcore.a
	$(CC) $(BASEFLAGS) $(REL_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/release/bench/%: tests/bench/%.c $(BENCH_OBJ) $(B)/release/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(REL_FLAGS) $(PKG_CFLAGS) $< $(BENCH_OBJ) \
		$(B)/release/libdtmqcore.a $(PKG_LIBS) -o $@

# ---- soak: make soak --------------------------------------------------------
#   make soak         the fault suite (every test whose name has "fault") with
#                     the larger counts of tests/fault/soak.env, on both
#                     stores, through tests/run.sh: same checks, bounded, last
#                     line "N passed, N failed"
.PHONY: soak
soak:
	@set -a; . tests/fault/soak.env; set +a; DTMQ_TEST_FILTER='fault' bash tests/run.sh
