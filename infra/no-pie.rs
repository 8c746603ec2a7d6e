//! The build script of every Lambda function crate, and of
//! infra/hello-lambda (the init-time baseline, built the same way).
//!
//! On Linux it links the binaries as fixed-address executables (`-no-pie`),
//! as Go links its Lambda functions by default. A position-independent
//! executable has the dynamic loader patch every pointer in its read-only data
//! (about 40,000 relocations in a function) before `main`, and each patched
//! page is a copy-on-write fault: about 150 page faults and a tenth of a
//! function's init time at every cold start (docs/benchmarks.md, "Lambda init
//! time"). The cost is that the executable's own code is not at a random
//! address (the stack, heap and libraries still are). The code stays compiled
//! as position-independent; only the link changes, so proc-macros, tests and
//! the other crates are untouched. infra/lambda-build checks the result.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
