//! The bench binaries' command lines: the options one at a time, the value
//! an option takes, and `-h`/`--help`.

/// This process's arguments after the program name.
pub struct Args(std::iter::Skip<std::env::Args>);

impl Args {
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1))
    }

    /// The argument after `option`: its value.
    pub fn value(&mut self, option: &str) -> Result<String, String> {
        self.0
            .next()
            .ok_or_else(|| format!("{option} needs a value"))
    }

    /// The value after `option`, as a number.
    pub fn number<T: std::str::FromStr>(&mut self, option: &str) -> Result<T, String> {
        let v = self.value(option)?;
        v.parse()
            .map_err(|_| format!("{option}: not a valid number: {v}"))
    }
}

impl Iterator for Args {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        self.0.next()
    }
}

/// This process's command line read over `defaults`: `-h` or `--help`
/// prints `usage` and exits 0; `apply` sets what any other option says,
/// taking the value it needs from the [`Args`] (or refuses it).
pub fn parse_options<T>(
    usage: &str,
    defaults: T,
    mut apply: impl FnMut(&mut T, &str, &mut Args) -> Result<(), String>,
) -> Result<T, String> {
    let mut options = defaults;
    let mut args = Args::from_env();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            std::process::exit(0);
        }
        apply(&mut options, &arg, &mut args)?;
    }
    Ok(options)
}

/// The parsed options, or else `{program}: {error}` on stderr and exit 2.
pub fn options_or_exit<T>(program: &str, parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|e| {
        eprintln!("{program}: {e}");
        std::process::exit(2);
    })
}
