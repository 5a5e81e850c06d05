# Makefile — builds dtmq, runs it, tests it.
#
#   make            build bin/dtmq (optimised)
#   make run        install missing Debian packages, build, start dtmq on its
#                   embedded defaults (SQLite file + in-process Kafka)
#   make test       install what the tests need, start real Kafka and FerretDB
#                   on 127.0.0.1, run every test, stop them; last line
#                   "N passed, N failed"
#   make check      build the sanitizer flavour and the test binaries only
#   make soak       the fault suite with larger counts (tests/fault/soak.env)
#   make bench      throughput and latency against ceilings; docs/benchmarks.md
#   make deps       install the Debian packages the build needs
#   make install    bin/dtmq, libdtmq.a (the C SDK), headers, dtmq.pc (PREFIX, DESTDIR)
#   make clean
#
# Three flavours from the same sources: build/release (bin/dtmq), build/asan
# (AddressSanitizer + UndefinedBehaviorSanitizer; dtmq and every test binary)
# and build/valgrind (no sanitizers, -O0; what make test runs under valgrind).
# Every library is found through pkg-config.

B ?= build

PKGS      := rdkafka libmongoc-1.0 jansson libcurl libmicrohttpd sqlite3 yaml-0.1 libpq
TEST_PKGS := check

CC        ?= gcc
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS := -std=c11 -D_GNU_SOURCE -g $(WARN) -pthread -MMD -MP
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lm
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell pkg-config --libs $(TEST_PKGS))

REL_FLAGS  := -O2
ASAN_FLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
VG_FLAGS   := -O0

# Everything but main.c goes into a static library the tests link too.
CORE_SRC := $(sort $(shell find broker connectors -name '*.c' ! -path broker/main.c))
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
all: bin/dtmq

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

bin/dtmq: $(B)/release/broker/main.o $(B)/release/libdtmqcore.a
	@mkdir -p bin
	$(CC) $(BASEFLAGS) $(REL_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/asan/dtmq: $(B)/asan/broker/main.o $(B)/asan/libdtmqcore.a
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/asan/tests/%: tests/%.c $(TEST_LIB_OBJ) $(B)/asan/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $< $(TEST_LIB_OBJ) \
		$(B)/asan/libdtmqcore.a $(PKG_LIBS) $(TEST_LIBS) -o $@

$(B)/valgrind/dtmq: $(B)/valgrind/broker/main.o $(B)/valgrind/libdtmqcore.a
	$(CC) $(BASEFLAGS) $(VG_FLAGS) $^ $(PKG_LIBS) -o $@

$(B)/valgrind/tests/%: tests/%.c $(VG_TEST_LIB_OBJ) $(B)/valgrind/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(VG_FLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $< $(VG_TEST_LIB_OBJ) \
		$(B)/valgrind/libdtmqcore.a $(PKG_LIBS) $(TEST_LIBS) -o $@

# The worked examples (docs/examples/, tests/examples/*.sh), built as a user
# would build them: against the headers laid out as `make install` installs
# them (include/dtmq/*.h), plus the examples' shared HTTP helper.
EXAMPLE_SRC  := $(sort $(filter-out docs/examples/common/%,$(wildcard docs/examples/*/*.c)))
EXAMPLE_BINS := $(patsubst docs/examples/%.c,$(B)/asan/examples/%,$(EXAMPLE_SRC))
EXAMPLE_INC  := $(B)/asan/examples/include
EXAMPLE_HDRS := $(addprefix $(EXAMPLE_INC)/dtmq/,dtmq_client.h dtmq_worker.h dtmq_barrier.h)
EXAMPLE_OBJ  := $(B)/asan/docs/examples/common/example_http.o $(B)/asan/docs/examples/common/example_pg.o

$(EXAMPLE_INC)/dtmq/dtmq_client.h: connectors/sdk/dtmq_client.h
$(EXAMPLE_INC)/dtmq/dtmq_worker.h: connectors/worker/dtmq_worker.h
$(EXAMPLE_INC)/dtmq/dtmq_barrier.h: connectors/barrier/dtmq_barrier.h
$(EXAMPLE_HDRS):
	@mkdir -p $(dir $@)
	cp $< $@

$(B)/asan/examples/%: docs/examples/%.c $(EXAMPLE_HDRS) $(EXAMPLE_OBJ) $(B)/asan/libdtmqcore.a
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) -I$(EXAMPLE_INC) $< $(EXAMPLE_OBJ) \
		$(B)/asan/libdtmqcore.a $(PKG_LIBS) -o $@

check: $(B)/asan/dtmq bin/dtmq $(TEST_BINS) $(B)/valgrind/dtmq $(VG_TEST_BINS) $(EXAMPLE_BINS)

run: deps
	@$(MAKE) --no-print-directory bin/dtmq
	./bin/dtmq

test:
	@bash docker/install-deps.sh --test
	@bash tests/run.sh

services-up:
	@bash tests/services/services.sh up

services-down:
	@bash tests/services/services.sh down

# ---- libdtmq: the C SDK as a static library, and make install -------------
#   make libdtmq                      $(B)/release/libdtmq.a
#   make install [PREFIX=/usr/local] [DESTDIR=]
#                                     bin/dtmq, lib/libdtmq.a, include/dtmq/*.h,
#                                     lib/pkgconfig/dtmq.pc
#   make uninstall                    removes exactly those
PREFIX  ?= /usr/local
DESTDIR ?=

DTMQ_VERSION := $(shell sed -n 's/^\#define DTMQ_VERSION "\(.*\)"/\1/p' broker/version.h)
LIBDTMQ_SRC  := $(sort $(wildcard connectors/sdk/*.c connectors/worker/*.c connectors/kafka/*.c \
                                  connectors/barrier/*.c) connectors/model/base64.c)
LIBDTMQ_OBJ  := $(patsubst %.c,$(B)/release/%.o,$(LIBDTMQ_SRC))
LIBDTMQ_HDR  := connectors/sdk/dtmq_client.h connectors/worker/dtmq_worker.h \
                connectors/barrier/dtmq_barrier.h
LIBDTMQ_REQ  := libpq libmongoc-1.0

.PHONY: libdtmq install uninstall
libdtmq: $(B)/release/libdtmq.a

$(B)/release/libdtmq.a: $(LIBDTMQ_OBJ)
	@rm -f $@
	ar rcs $@ $^

install: bin/dtmq $(B)/release/libdtmq.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
		$(DESTDIR)$(PREFIX)/include/dtmq
	install -m 755 bin/dtmq $(DESTDIR)$(PREFIX)/bin/dtmq
	install -m 644 $(B)/release/libdtmq.a $(DESTDIR)$(PREFIX)/lib/libdtmq.a
	install -m 644 $(LIBDTMQ_HDR) $(DESTDIR)$(PREFIX)/include/dtmq/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(DTMQ_VERSION)|g' \
		-e 's|@BARRIER_REQUIRES@|$(LIBDTMQ_REQ)|g' connectors/sdk/dtmq.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/dtmq.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/dtmq.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dtmq $(DESTDIR)$(PREFIX)/lib/libdtmq.a \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/dtmq.pc \
		$(addprefix $(DESTDIR)$(PREFIX)/include/dtmq/,$(notdir $(LIBDTMQ_HDR)))
	-rmdir $(DESTDIR)$(PREFIX)/include/dtmq 2>/dev/null

clean:
	rm -rf build bin

# .incbin files are invisible to -MMD: rebuild the embedded schemas when one changes.
$(foreach f,release asan valgrind,$(B)/$(f)/connectors/schema/schemas_embedded.o): $(shell find schemas -name '*.schema.json')

# .incbin files are invisible to -MMD: rebuild the embedded admin page when one of its files changes.
$(foreach f,release asan valgrind,$(B)/$(f)/broker/admin_assets.o): $(wildcard broker/admin/*)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# ---- benchmarks: make bench ------------------------------------------------
#   make bench        installs what it needs, builds the release flavour and the
#                     programs of tests/bench/ into $(B)/release/bench/, starts
#                     Kafka and FerretDB on their own ports, runs every scenario
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
