#pragma once
// Work split over libtorch's OpenMP threads from files built without OpenMP flags. at::parallel_for is a header
// template whose `#pragma omp parallel` is compiled into the calling file: built without -fopenmp it runs on one
// thread, silently. This calls libgomp's entry point (what the pragma becomes) directly; libtorch links libgomp and
// so does the build (cmake/Libtorch.cmake). A stable ABI since GCC 4.9.
#include <algorithm>
#include <cstdint>

#include <ATen/Parallel.h>

extern "C" void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
extern "C" int omp_get_thread_num(void);
extern "C" int omp_get_num_threads(void);

namespace alexandria {

namespace torch_threads_detail {
template <typename Body>
struct ChunkJob {
    const Body* body;
    int64_t chunks;
};

template <typename Body>
void run_chunk_job(void* p) {
    const auto& job = *static_cast<const ChunkJob<Body>*>(p);
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t per = (job.chunks + threads - 1) / threads;
    const int64_t c0 = t * per, c1 = std::min(job.chunks, c0 + per);
    if (c0 < c1) (*job.body)(c0, c1);
}
}  // namespace torch_threads_detail

// body(c0, c1) over [0, chunks), split into contiguous runs, one per thread (at::parallel_for's split). The body
// must not throw. A template, not std::function: it runs for every projection of every decoded frame.
template <typename Body>
void on_torch_threads(int64_t chunks, const Body& body) {
    const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
    if (threads <= 1 || at::in_parallel_region()) {
        body(0, chunks);
        return;
    }
    torch_threads_detail::ChunkJob<Body> job{&body, chunks};
    GOMP_parallel(torch_threads_detail::run_chunk_job<Body>, &job, static_cast<unsigned>(threads), 0);
}

}  // namespace alexandria
