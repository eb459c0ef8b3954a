// Counters shared by the engine units. The hot path only bumps these; it
// never logs. Each reason a frame is not relayed has its own counter.
#pragma once
#include <array>
#include <cstdint>

namespace mcr {

enum class DropReason : uint8_t {
  Truncated,      // frame shorter than the headers it announces, or cut to fit a ring frame
  NotIpv4,        // not an IPv4 frame (after an optional 802.1Q tag)
  BadIpHeader,    // IP version/IHL invalid
  BadIpLength,    // IP total length smaller than the header or beyond the frame
  BadIpChecksum,  // IPv4 header checksum wrong
  Fragment,       // IP fragment (not reassembled)
  NotUdp,         // IPv4 but not UDP
  BadUdpLength,   // UDP length field inconsistent with the IP payload
  NoRule,         // well-formed, but no rule matches
  TtlExpired,     // arrived with TTL <= 1 and no output sets its own TTL
  NoSendSlot,     // every send slot in flight; output skipped
  SendFailed,     // the kernel refused a send (per output errors are counted too)
  RxError,        // an input socket reported an error (e.g. ENETDOWN)
  UnknownCompletion,  // a completion with an unknown tag (a bug if ever non-zero)
  OutputDown,     // the output interface was down (ENETDOWN, ENXIO): its frames were dropped
  TxRefused,      // the output device refused the frames flush after flush (no carrier, queue stayed full)
  TooBig,         // beyond the output's MTU where only the packet path may send (keep-source)
  // Register decapsulation (RFC 7761 4.4): what the register input refused.
  RegisterShort,        // shorter than an IPv4 header plus the 8-byte Register header
  RegisterNotRegister,  // a PIM message that is not a version 2 Register (type 1)
  RegisterBadChecksum,  // checksum wrong over both the 8-byte header and the whole message
  RegisterNull,         // a null-Register (N bit): normal, it is the supervisor's (its own socket reads it)
  RegisterBadInner,     // the encapsulated packet is not relayable UDP/IPv4 (or a fragment)
  NotifyOverflow,       // a notification that found the pending table (or its hash table) full
  kCount
};

constexpr std::array<const char*, static_cast<size_t>(DropReason::kCount)> kDropNames = {
    "truncated",  "not_ipv4", "bad_ip_header", "bad_ip_length", "bad_ip_checksum",
    "fragment",   "not_udp",  "bad_udp_length", "no_rule",       "ttl_expired",
    "no_send_slot", "send_failed", "rx_error", "unknown_completion",
    "output_down", "tx_refused",   "too_big",
    "register_short", "register_not_register", "register_bad_checksum", "register_null", "register_bad_inner",
    "notify_overflow"};

using DropCounters = std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>;

inline void count(DropCounters& drops, DropReason reason) { ++drops[static_cast<size_t>(reason)]; }

// What happened on the way out that is not a drop, but says the engine is
// near a limit.
enum class Event : uint8_t {
  TxRingFull,  // a frame took the sendmsg path because its TX ring was full
  FlushRetry,  // a pass in which the device refused a TX ring's flushes for now (once per ring and
               // pass, however many it refused): its frames are tried again next pass
  FlushDeferred,  // no submission queue entry for a TX ring flush: its frames wait for the next one
  kCount
};

constexpr std::array<const char*, static_cast<size_t>(Event::kCount)> kEventNames = {"tx_ring_full", "flush_retry",
                                                                                    "flush_deferred"};

using EventCounters = std::array<uint64_t, static_cast<size_t>(Event::kCount)>;

inline void count(EventCounters& events, Event event) { ++events[static_cast<size_t>(event)]; }

}  // namespace mcr
