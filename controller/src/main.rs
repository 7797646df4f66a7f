//! `controller`: run or check a stampede benchmark plan (see [`stampede_controller::cli`]).

fn main() -> std::process::ExitCode {
    stampede_controller::cli::main()
}
