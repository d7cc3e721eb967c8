// A reduced copy of the Hopper dK/dV kernel's hand-over of LSE and Delta, to find out whether racecheck's
// reports against the bulk-copy version are real: a producer fills a ring of STAGES shared buffers, consumers read
// them with ordinary loads and hand each stage back through an "empty" mbarrier, as HopperPipeline does.
//
//   nvcc -gencode=arch=compute_90a,code=sm_90a -o probe bulk_copy_probe.cu
//   compute-sanitizer --tool racecheck ./probe MODE      (MODE below; the probe also checks its sums)
//
// Modes (how the producer fills a stage / how the consumers hand it back):
//   0 bulk copy (cp.async.bulk, async proxy) / per warp: __syncwarp, lane 0 arrives   (the kernel as it was)
//   1 bulk copy / every consumer thread arrives
//   2 bulk copy / fence.proxy.async, __syncwarp, lane 0 arrives
//   3 bulk copy / fence.proxy.async, every consumer thread arrives
//   4 producer warp's ordinary stores, every lane arrives on "full" / every consumer thread arrives
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <vector>

constexpr int STAGES = 3, FLOATS = 128, STEPS = 48, CONSUMERS = 256, THREADS = CONSUMERS + 32;

__device__ __forceinline__ uint32_t smem(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void init(uint64_t* b, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(smem(b)), "r"(count) : "memory");
}
__device__ __forceinline__ void arrive(uint64_t* b) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(smem(b)) : "memory");
}
__device__ __forceinline__ void expectBytes(uint64_t* b, int bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(smem(b)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void wait(uint64_t* b, int parity) {
    uint32_t done;
    do {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done) : "r"(smem(b)), "r"(parity) : "memory");
    } while (!done);
}
__device__ __forceinline__ void bulkLoad(void* target, const void* source, int bytes, uint64_t* b) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 :: "r"(smem(target)), "l"(source), "r"(bytes), "r"(smem(b)) : "memory");
}

__global__ void __launch_bounds__(THREADS, 1) probe(const float* source, float* out, int mode) {
    __shared__ __align__(128) float ring[STAGES][FLOATS];
    __shared__ __align__(8) uint64_t full[STAGES], empty[STAGES];
    const bool bulk = mode <= 3, everyThread = mode == 1 || mode == 3 || mode == 4, fence = mode == 2 || mode == 3;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            init(&full[s], bulk ? 1 : 32);
            init(&empty[s], everyThread ? CONSUMERS : CONSUMERS / 32);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    const float* const rows = source + (size_t)blockIdx.x * STEPS * FLOATS;
    if (warp == CONSUMERS / 32) {  // the producer warp
        for (int i = 0; i < STEPS; ++i) {
            const int stage = i % STAGES;
            if (bulk) {
                if (lane == 0) {
                    wait(&empty[stage], (i / STAGES + 1) & 1);
                    expectBytes(&full[stage], FLOATS * 4);
                    bulkLoad(ring[stage], rows + i * FLOATS, FLOATS * 4, &full[stage]);
                }
            } else {
                wait(&empty[stage], (i / STAGES + 1) & 1);
                for (int j = lane; j < FLOATS; j += 32) ring[stage][j] = rows[i * FLOATS + j];
                arrive(&full[stage]);
            }
        }
    } else {
        float sum = 0.0f;
        for (int i = 0; i < STEPS; ++i) {
            const int stage = i % STAGES;
            wait(&full[stage], (i / STAGES) & 1);
            sum += ring[stage][threadIdx.x % FLOATS] * (float)(i + 1) + ring[stage][(threadIdx.x * 7 + i) % FLOATS];
            if (fence) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            if (everyThread) {
                arrive(&empty[stage]);
            } else {
                __syncwarp();
                if (lane == 0) arrive(&empty[stage]);
            }
        }
        out[(size_t)blockIdx.x * CONSUMERS + threadIdx.x] = sum;
    }
}

int main(int argc, char** argv) {
    const int mode = argc > 1 ? atoi(argv[1]) : 0, blocks = 132;
    std::vector<float> host((size_t)blocks * STEPS * FLOATS), result((size_t)blocks * CONSUMERS);
    srand(1234 + mode);
    for (auto& x : host) x = (float)(rand() % 1000);  // integers: every sum is exact in any order
    float *source, *out;
    cudaMalloc(&source, host.size() * 4);
    cudaMalloc(&out, result.size() * 4);
    cudaMemcpy(source, host.data(), host.size() * 4, cudaMemcpyHostToDevice);
    cudaMemset(out, 0xff, result.size() * 4);  // NaN: every sum must be written
    probe<<<blocks, THREADS>>>(source, out, mode);
    cudaError_t error = cudaDeviceSynchronize();
    if (error != cudaSuccess) { printf("mode %d: %s\n", mode, cudaGetErrorString(error)); return 1; }
    cudaMemcpy(result.data(), out, result.size() * 4, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int b = 0; b < blocks; ++b)
        for (int t = 0; t < CONSUMERS; ++t) {
            float sum = 0.0f;
            const float* rows = host.data() + (size_t)b * STEPS * FLOATS;
            for (int i = 0; i < STEPS; ++i)
                sum += rows[i * FLOATS + t % FLOATS] * (float)(i + 1) + rows[i * FLOATS + (t * 7 + i) % FLOATS];
            if (!(result[(size_t)b * CONSUMERS + t] == sum)) ++wrong;
        }
    printf("mode %d: %d of %d sums wrong\n", mode, wrong, blocks * CONSUMERS);
    return wrong != 0;
}
