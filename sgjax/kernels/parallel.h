// The threads of a fused call (logistic_step.cc): the steps of a call, each in two phases
// over parts, on the calling thread and XLA's thread pool, with one wake-up of the pool per
// call; and the first phase's part that reads W alone run during the step before's second.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace sgjax_parallel {

namespace ffi = xla::ffi;

// For each active step s of a call (the k-th of them): first(k, s, i) for the parts i < n,
// then, once all have returned, second(k, s, i); on the calling thread and n - 1 tasks of
// XLA's thread pool; returns when every part of every step has run. The pool is woken once
// per call, not once per step or phase (a wake-up costs tens of microseconds, as much as a
// phase of a step of a few hundred examples): each thread claims, phase by phase, the parts
// not yet claimed and waits between phases (spinning) only for parts that running threads
// have claimed; so a task that starts late, or that the pool runs inline, finds less or
// nothing to do. Which thread runs a part does not change the result.
//
// pre(k, s, j), for the `chunks` chunks j of a step, is the part of the step's first phase
// that reads W alone (CBOW's hidden vectors): it runs before the step's first(), for the
// first step at the call's start, and for each later one during the step before's second
// phase, as soon as the parts that update W (the even ones: Step::owns) are done, by every
// thread that has finished its own parts; so the core that finishes first fills its wait
// (hierarchical softmax: W's, a window of rows against a Huffman path; negative sampling:
// either, ~6 rows each; a W_out core done first waits for W's, then joins in).
//
// The counters (seven per step) live on the heap, shared with the tasks: the caller returns
// once every part has run, without waiting for the tasks themselves, and a task that starts
// (or finishes) after that touches only the counters, never pre, first or second (every
// part is claimed by then). Waiting for the tasks on this frame's mutex, as earlier versions
// did, let a task signal it after the caller had returned (found by review, reproduced).
struct Phases {
  explicit Phases(int64_t steps) : c(new std::atomic<int64_t>[kCounters * steps]) {
    for (int64_t i = 0; i < kCounters * steps; ++i) c[i].store(0);
  }
  // per step: next1, done1, next2, done2, W's parts done, next pre chunk, pre chunks done
  static constexpr int64_t kCounters = 7;
  std::unique_ptr<std::atomic<int64_t>[]> c;
};

inline void wait_for(const std::atomic<int64_t>& c, int64_t n) {
  while (c.load() < n) std::this_thread::yield();
}

template <typename F0, typename F1, typename F2>
void parallel_steps(ffi::ThreadPool& pool, int64_t n, int64_t steps, const int32_t* active,
                    int64_t chunks, const F0& pre, const F1& first, const F2& second) {
  std::vector<int64_t> live;  // the active steps (the rest: padding of an epoch's last call)
  for (int64_t s = 0; s < steps; ++s)
    if (active[s]) live.push_back(s);
  if (live.empty()) return;
  auto ph = std::make_shared<Phases>(static_cast<int64_t>(live.size()));
  auto ids = std::make_shared<std::vector<int64_t>>(std::move(live));
  const F0* f0 = &pre;
  const F1* f1 = &first;
  const F2* f2 = &second;
  const int64_t w_parts = n == 1 ? 1 : (n + 1) / 2;  // the parts that update W
  auto work = [ph, ids, n, chunks, w_parts, f0, f1, f2] {
    const int64_t L = static_cast<int64_t>(ids->size());
    const auto run_pre = [&](int64_t k) {  // claims chunks of step k's pre
      std::atomic<int64_t>* c = ph->c.get() + Phases::kCounters * k;
      for (int64_t j; (j = c[5].fetch_add(1)) < chunks;) {
        (*f0)(k, (*ids)[k], j);
        c[6].fetch_add(1);
      }
    };
    for (int64_t k = 0; k < L; ++k) {
      const int64_t s = (*ids)[k];
      std::atomic<int64_t>* c = ph->c.get() + Phases::kCounters * k;
      if (k == 0) run_pre(0);
      wait_for(c[6], chunks);
      for (int64_t i; (i = c[0].fetch_add(1)) < n;) {
        (*f1)(k, s, i);
        c[1].fetch_add(1);
      }
      wait_for(c[1], n);
      for (int64_t i; (i = c[2].fetch_add(1)) < n;) {
        (*f2)(k, s, i);
        if (n == 1 || i % 2 == 0) c[4].fetch_add(1);
        c[3].fetch_add(1);
      }
      if (k + 1 < L && chunks > 0) {  // the next step's pre, once W is final
        wait_for(c[4], w_parts);
        run_pre(k + 1);
      }
      wait_for(c[3], n);
    }
  };
  for (int64_t i = 1; i < n; ++i) pool.Schedule(decltype(work)(work));  // a copy each
  work();
}

}  // namespace sgjax_parallel
