# fuzz.mk — builds the libFuzzer targets of tests/fuzz/ with clang; run through
# tests/fuzz/build.sh (from the repository root: schemas_embedded.c's .incbin
# paths are relative to it). Not part of the main Makefile's build.
B ?= build
FZ := $(B)/fuzz
FUZZ_CC ?= clang

PKGS     := rdkafka libmongoc-1.0 jansson libcurl libmicrohttpd sqlite3 yaml-0.1 libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)) -Ibroker -Iconnectors -Iconnectors/libdtmq/include
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lm

SAN    := address,undefined
CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -pthread \
          -fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter -MMD -MP

# Only the dtmq sources the parsers need, compiled by clang with coverage
# instrumentation (fuzzer-no-link): not the gcc-built archive.
LIB_SRC := broker/trans_json.c broker/config.c \
           connectors/libdtmq/common/base64.c connectors/libdtmq/common/rules.c \
           connectors/daemon/model/trans.c \
           connectors/daemon/schema/json_schema.c connectors/daemon/schema/schemas_embedded.c \
           connectors/libdtmq/dtmq.c
LIB_OBJ := $(patsubst %.c,$(FZ)/obj/%.o,$(LIB_SRC))

TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
BINS    := $(addprefix $(FZ)/fuzz_,$(TARGETS))

.PHONY: all
all: $(BINS)

$(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer-no-link,$(SAN) $(PKG_CFLAGS) -c $< -o $@

$(FZ)/libdtmqfuzz.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FZ)/libdtmqfuzz.a
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer,$(SAN) $(PKG_CFLAGS) $< $(FZ)/libdtmqfuzz.a \
		$(PKG_LIBS) -o $@

# .incbin files are invisible to -MMD.
$(FZ)/obj/connectors/daemon/schema/schemas_embedded.o: $(wildcard schemas/*/*.schema.json)

-include $(shell find $(FZ) -name '*.d' 2>/dev/null)
