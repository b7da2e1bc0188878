//! The syscall corpus: (request → call line) pairs written from the registry itself.
//!
//! Every tool contributes requests in many phrasings — verbs and their synonyms, polite
//! and terse forms, questions, word orders, quoting styles — with its arguments drawn
//! from large pools of paths, file names, recipients, message bodies and commands. The
//! shipped tools have a hand-written paraphrase grammar; an imported (MCP) tool
//! contributes its own templates and description, wrapped in the same polite and
//! question forms. Requests that are no tool call ("order a cake for friday"), or that name a
//! file without saying what to do with it, map to `none`.
//!
//! Everything is deterministic for a seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::registry::{ArgType, Call, Registry, Tool};
use crate::understand::{decode, line};

/// One training pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The English request.
    pub request: String,
    /// Its call line (`none` for a refusal).
    pub call: String,
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const STEMS: &[&str] = &[
    "notes",
    "todo",
    "report",
    "budget",
    "draft",
    "main",
    "config",
    "readme",
    "index",
    "data",
    "results",
    "summary",
    "letter",
    "plan",
    "ideas",
    "log",
    "list",
    "recipe",
    "journal",
    "agenda",
    "invoice",
    "resume",
    "contacts",
    "schedule",
    "backup",
    "test",
    "lib",
    "utils",
    "server",
    "client",
    "app",
    "script",
    "build",
    "deploy",
    "setup",
    "styles",
    "photo",
    "image",
    "diagram",
    "chart",
    "thesis",
    "chapter1",
    "chapter-2",
    "q3-numbers",
    "meeting_notes",
    "shopping",
    "groceries",
    "expenses",
    "taxes-2023",
    "release-notes",
    "changelog",
    "license",
    "manual",
    "guide",
    "faq",
    "tasks",
    "inbox",
    "draft2",
    "final",
    "old",
    "new",
    "copy",
    "temp",
    "scratch",
    "output",
    "input",
    "users",
    "orders",
    "customers",
    "products",
    "inventory",
    "sales",
    "metrics",
    "stats",
    "model",
    "weights",
    "train",
    "eval",
    "dataset",
    "sample",
    "example",
    "demo",
    "hello",
    "world",
    "foo",
    "bar",
    "baz",
    "alpha",
    "beta",
    "gamma",
    "v1",
    "v2",
    "2024-01-15",
    "minutes",
    "proposal",
    "contract",
    "slides",
    "poem",
    "story",
    "song",
    "lyrics",
];
const EXTENSIONS: &[&str] = &[
    ".txt", ".md", ".rs", ".py", ".json", ".csv", ".toml", ".yaml", ".yml", ".log", ".html",
    ".css", ".js", ".ts", ".c", ".h", ".sh", ".pdf", ".docx", ".xlsx", ".png", ".jpg", ".svg",
    ".zip", ".tar.gz", ".ini", ".cfg", ".xml", ".sql", ".go", ".java", ".bak", ".old", ".tmp",
    ".bin", ".dat", ".org", ".rst", ".tex", ".ipynb",
];
const BARE_FILES: &[&str] = &[
    "Makefile",
    "Dockerfile",
    "LICENSE",
    "README",
    "VERSION",
    "Cargo.toml",
    "package.json",
    "README.md",
    "CHANGELOG.md",
    "Gemfile",
    ".gitignore",
    ".env",
    "requirements.txt",
    "index.html",
    "go.mod",
    "CONTRIBUTING.md",
    "AUTHORS",
    "NOTICE",
    "TODO",
];
const DIRS: &[&str] = &[
    "docs",
    "src",
    "notes",
    "data",
    "projects",
    "tmp",
    "archive",
    "backup",
    "logs",
    "photos",
    "music",
    "videos",
    "downloads",
    "reports",
    "drafts",
    "tests",
    "scripts",
    "config",
    "build",
    "dist",
    "public",
    "assets",
    "images",
    "old",
    "work",
    "personal",
    "2023",
    "2024",
    "q1",
    "q2",
    "clients",
    "invoices",
    "recipes",
    "papers",
    "research",
    "experiments",
    "results",
    "src/bin",
    "src/util",
    "web",
    "api",
    "lib",
    "vendor",
    "projects/alpha",
    "projects/beta",
    "team",
    "shared",
    "inbox",
    "outbox",
    "misc",
    "documents",
    "desktop",
    "examples",
    "fixtures",
    "templates",
    "static",
    "site",
];
const PEOPLE: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "oscar",
    "peggy",
    "sybil",
    "trent",
    "victor",
    "walter",
    "zoe",
    "sam",
    "max",
    "lena",
    "omar",
    "priya",
    "chen",
    "yuki",
    "marco",
    "sofia",
    "liam",
    "emma",
    "noah",
    "mia",
    "lucas",
    "ana",
    "kai",
    "nina",
    "tom",
    "kate",
    "raj",
    "ines",
    "paul",
    "boss",
    "manager",
    "team",
    "support",
    "ops",
    "hr",
    "mom",
    "dad",
    "everyone",
    "alice@example.com",
    "bob.smith",
    "dev-team",
    "j.doe",
    "ceo",
    "landlord",
    "doctor",
];
const MESSAGES: &[&str] = &[
    "the report is ready",
    "I will be late",
    "meeting moved to 3pm",
    "thanks for your help",
    "call me when you can",
    "the build passed",
    "the build is broken again",
    "lunch tomorrow?",
    "see you at the station",
    "happy birthday!",
    "the server is back up",
    "please review my pull request",
    "running ten minutes late",
    "good news, we got it",
    "can we talk later",
    "the invoice was paid",
    "don't forget the milk",
    "the tests are green",
    "deploy is done",
    "I'm out sick today",
    "great job on the demo",
    "the meeting is cancelled",
    "where are the keys?",
    "dinner at eight",
    "the package shipped",
    "please send the slides",
    "I pushed the fix",
    "let's meet on monday",
    "the printer is jammed",
    "we need more coffee",
    "your order has arrived",
    "the train is delayed",
    "on my way",
    "see you soon",
    "the draft is in the shared folder",
    "welcome to the team",
    "backup finished",
    "the rent is paid",
    "congratulations!",
    "I fixed the bug",
    "can you cover my shift",
    "the kids are asleep",
    "remember the dentist at 4",
    "the door code changed to 4321",
];
const CONTENTS: &[&str] = &[
    "hello world",
    "buy milk",
    "remember to stretch",
    "version 1.0",
    "TODO: write tests",
    "first line of the story",
    "the quick brown fox",
    "meeting notes for tuesday",
    "eggs, flour, sugar",
    "deadline is friday",
    "debug=true",
    "port = 8080",
    "Dear Sir or Madam",
    "chapter one",
    "call mom",
    "pick up the kids at 5",
    "name,age\nann,31",
    "# Title",
    "all done",
    "temperature: 20C",
    "ok",
    "draft",
    "nothing to report",
    "ideas for the weekend",
    "password hints go elsewhere",
    "the end",
    "step 1: unpack the box",
    "mode=fast",
    "water the plants",
    "Lorem ipsum",
    "build passed on monday",
    "alpha release",
    "thanks everyone",
    "fix the login page",
    "new year resolutions",
    "1 2 3 4",
    "yes",
    "pending review",
];
const COMMANDS: &[&str] = &[
    "ls -la",
    "make test",
    "cargo build --release",
    "git status",
    "git log --oneline",
    "python3 script.py",
    "grep -r TODO src",
    "wc -l notes.txt",
    "echo hello",
    "npm test",
    "npm run build",
    "pytest -q",
    "du -sh .",
    "df -h",
    "uptime",
    "whoami",
    "cat /etc/os-release",
    "ps aux",
    "make",
    "make clean",
    "./run.sh",
    "./build.sh --fast",
    "cargo test",
    "go test ./...",
    "node index.js",
    "tar czf out.tgz docs",
    "date",
    "ls",
    "pwd",
    "find . -name '*.rs'",
    "sort data.csv",
    "head -n 5 log.txt",
    "git diff",
    "git pull",
    "docker ps",
    "python3 -m http.server",
    "rustc --version",
    "cmake ..",
    "ninja",
    "bash deploy.sh prod",
    "zip -r site.zip public",
    "sed -n 1,10p main.c",
    "curl localhost:8080/health",
    "ping -c 1 example.com",
    "ruby app.rb",
    "java -jar app.jar",
    "gcc -O2 main.c -o main",
    "black .",
    "ruff check",
];
/// Common words: message bodies, file contents, file and directory names, requests
/// that are no tool call are made of them, so that the model learns to copy values
/// rather than remember them.
const WORDS: &[&str] = &[
    "the",
    "a",
    "my",
    "our",
    "your",
    "new",
    "old",
    "big",
    "small",
    "red",
    "blue",
    "green",
    "final",
    "first",
    "last",
    "next",
    "early",
    "late",
    "quick",
    "slow",
    "good",
    "bad",
    "happy",
    "busy",
    "ready",
    "done",
    "broken",
    "fixed",
    "open",
    "closed",
    "empty",
    "full",
    "report",
    "meeting",
    "lunch",
    "dinner",
    "party",
    "trip",
    "flight",
    "train",
    "bus",
    "car",
    "bike",
    "house",
    "garden",
    "kitchen",
    "office",
    "school",
    "class",
    "team",
    "project",
    "plan",
    "idea",
    "note",
    "list",
    "draft",
    "budget",
    "invoice",
    "order",
    "package",
    "letter",
    "photo",
    "picture",
    "song",
    "movie",
    "book",
    "story",
    "game",
    "server",
    "build",
    "test",
    "release",
    "bug",
    "fix",
    "patch",
    "update",
    "backup",
    "database",
    "network",
    "printer",
    "laptop",
    "phone",
    "screen",
    "keyboard",
    "coffee",
    "tea",
    "milk",
    "bread",
    "eggs",
    "cheese",
    "apples",
    "rice",
    "pasta",
    "soup",
    "cake",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "today",
    "tomorrow",
    "tonight",
    "morning",
    "evening",
    "noon",
    "week",
    "month",
    "year",
    "is",
    "are",
    "was",
    "will",
    "be",
    "has",
    "have",
    "had",
    "can",
    "should",
    "must",
    "go",
    "come",
    "bring",
    "send",
    "buy",
    "sell",
    "call",
    "meet",
    "start",
    "stop",
    "finish",
    "check",
    "review",
    "sign",
    "pay",
    "cancel",
    "move",
    "change",
    "clean",
    "cook",
    "wash",
    "need",
    "want",
    "like",
    "love",
    "forgot",
    "remember",
    "think",
    "know",
    "see",
    "hear",
    "and",
    "or",
    "but",
    "so",
    "to",
    "at",
    "on",
    "in",
    "for",
    "with",
    "from",
    "about",
    "up",
    "down",
    "out",
    "off",
    "over",
    "back",
    "again",
    "now",
    "soon",
    "later",
    "never",
    "please",
    "thanks",
    "sorry",
    "yes",
    "no",
    "maybe",
    "ok",
    "great",
    "fine",
    "nice",
    "it",
    "we",
    "they",
    "he",
    "she",
    "I",
    "you",
    "them",
    "us",
    "me",
    "this",
    "that",
    "one",
    "two",
    "three",
    "ten",
    "twenty",
    "hundred",
    "half",
    "all",
    "some",
    "more",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "north",
    "south",
    "east",
    "west",
    "river",
    "hill",
    "cat",
    "dog",
    "bird",
    "fish",
    "horse",
    "tree",
    "flower",
    "sun",
    "moon",
    "star",
    "rain",
    "snow",
    "wind",
    "fire",
    "water",
    "stone",
    "gold",
    "silver",
    "paper",
    "glass",
    "wood",
];
const PROGRAMS: &[&str] = &[
    "ls",
    "make",
    "cargo",
    "git",
    "python3",
    "grep",
    "wc",
    "echo",
    "npm",
    "pytest",
    "du",
    "df",
    "cat",
    "ps",
    "go",
    "node",
    "tar",
    "date",
    "find",
    "sort",
    "head",
    "tail",
    "docker",
    "rustc",
    "cmake",
    "ninja",
    "bash",
    "zip",
    "unzip",
    "sed",
    "awk",
    "curl",
    "ping",
    "ruby",
    "java",
    "gcc",
    "clang",
    "black",
    "ruff",
    "mkdir",
    "touch",
    "cp",
    "diff",
    "uniq",
    "cut",
    "./run.sh",
    "./build.sh",
    "./deploy.sh",
    "./test.sh",
    "sqlite3",
    "jq",
    "xz",
    "gzip",
];
const FLAGS: &[&str] = &[
    "-la",
    "-l",
    "-a",
    "-r",
    "-n",
    "-v",
    "-q",
    "-h",
    "-f",
    "--help",
    "--version",
    "--release",
    "--verbose",
    "--fast",
    "--all",
    "-O2",
    "-j",
    "-c",
    "-x",
    "--dry-run",
    "build",
    "test",
    "run",
    "status",
    "log",
    "diff",
    "pull",
    "push",
    "install",
    "check",
    "clean",
    "up",
    "down",
    "list",
    "start",
    "stop",
    "1",
    "5",
    "10",
    "100",
    ".",
    "..",
];

const NOT_TOOL_CALLS: &[&str] = &[
    "make me a smoothie",
    "what's the weather",
    "tell me a story",
    "how are you",
    "good morning",
    "thanks",
    "thank you",
    "who are you",
    "what can you do",
    "order a pizza",
    "book a table for two",
    "turn on the lights",
    "set an alarm for 7",
    "what time is it",
    "play a song",
    "sing something",
    "what is 2 plus 2",
    "who is the president",
    "what's the capital of France",
    "translate hello to Spanish",
    "recommend a movie",
    "call a taxi",
    "buy concert tickets",
    "find a good restaurant",
    "how tall is mount everest",
    "explain quantum physics",
    "write me a poem",
    "what's your name",
    "are you a robot",
    "flip a coin",
    "roll a die",
    "hello",
    "hi there",
    "never mind",
    "cancel",
    "stop",
    "I'm bored",
    "I love you",
    "what day is it",
    "remind me to breathe",
    "how do I cook rice",
    "walk the dog",
    "feed the cat",
    "open the window",
    "close the door",
    "make coffee",
    "what is the meaning of life",
    "how old are you",
    "tell me the news",
    "schedule a haircut",
    "lock the front door",
    "start the car",
    "water the garden",
    "do my homework",
    "what should I eat",
    "is it going to rain",
    "count to ten",
];
const FILE_MENTIONS: &[&str] = &[
    "{f} is a great file",
    "I like {f}",
    "{f}",
    "about {f}",
    "{f} exists",
    "hmm, {f}",
    "do you know {f}?",
    "{f} was made yesterday",
    "do something with {f}",
    "what about {f}",
    "is {f} important?",
    "{f} or not {f}",
];

const PREFIXES: &[&str] = &[
    "",
    "",
    "",
    "",
    "",
    "please ",
    "please ",
    "hey, ",
    "ok, ",
    "hi! ",
    "quick one: ",
    "etch, ",
    "can you ",
    "could you ",
    "would you ",
    "would you please ",
    "pls ",
    "I need you to ",
    "go ahead and ",
    "now ",
    "kindly ",
];
const SUFFIXES: &[&str] = &[
    "",
    "",
    "",
    "",
    "",
    "",
    " please",
    " for me",
    " thanks",
    " now",
    " asap",
    ", thank you",
    " right away",
    " when you get a chance",
    "!",
    ".",
];

/// A value for an argument of type `ty` (named `name`).
fn value(rng: &mut Rng, ty: ArgType, name: &str) -> String {
    match ty {
        ArgType::Path if name == "path" || name == "src" || name == "dst" => file(rng),
        ArgType::Path => file(rng),
        ArgType::Recipient => recipient(rng),
        ArgType::Text if rng.chance(0.3) => {
            let pool = if name == "content" {
                CONTENTS
            } else {
                MESSAGES
            };
            rng.pick(pool).replace('\n', " ")
        }
        ArgType::Text => phrase(rng, 1, 9),
        ArgType::Command if rng.chance(0.3) => rng.pick(COMMANDS).to_string(),
        ArgType::Command => command(rng),
    }
}

/// A few words: a message, a file's content.
fn phrase(rng: &mut Rng, min: usize, max: usize) -> String {
    let n = min + rng.below(max - min + 1);
    let mut words: Vec<String> = (0..n).map(|_| rng.pick(WORDS).to_string()).collect();
    if rng.chance(0.2) {
        words.push(format!("{}", rng.below(1000)));
    }
    let mut p = words.join(" ");
    if rng.chance(0.2) {
        let mut c = p.chars();
        p = c
            .next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default();
    }
    match rng.below(10) {
        0 => p.push('?'),
        1 => p.push('!'),
        2 => p.push('.'),
        _ => {}
    }
    p
}

/// A command line: a program and a few arguments.
fn command(rng: &mut Rng) -> String {
    let mut c = rng.pick(PROGRAMS).to_string();
    for _ in 0..rng.below(4) {
        c.push(' ');
        if rng.chance(0.3) {
            c.push_str(&file(rng));
        } else {
            c.push_str(rng.pick(FLAGS));
        }
    }
    c
}

/// Someone to write to: a known name, or a made-up one.
fn recipient(rng: &mut Rng) -> String {
    if rng.chance(0.5) {
        return rng.pick(PEOPLE).to_string();
    }
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ra", "to", "ne", "sa", "vi", "de", "jo", "an", "el", "ri", "mar", "ben",
        "li", "za", "ko", "pe", "tu", "shi", "ya", "no", "bel", "dan", "fi", "gu",
    ];
    let mut name: String = (0..2 + rng.below(2)).map(|_| rng.pick(SYLLABLES)).collect();
    match rng.below(8) {
        0 => name.push_str("@example.com"),
        1 => name = format!("{name}.{}", rng.pick(SYLLABLES)),
        2 => name.push_str(&format!("{}", rng.below(100))),
        _ => {}
    }
    name
}

fn dir(rng: &mut Rng) -> String {
    let mut d = if rng.chance(0.6) {
        rng.pick(DIRS).to_string()
    } else {
        rng.pick(WORDS).to_lowercase()
    };
    if rng.chance(0.15) {
        d = format!("{d}/{}", rng.pick(DIRS).rsplit('/').next().unwrap_or("x"));
    }
    if rng.chance(0.2) {
        d.push('/');
    }
    d
}

fn file(rng: &mut Rng) -> String {
    if rng.chance(0.12) {
        return rng.pick(BARE_FILES).to_string();
    }
    let mut stem = if rng.chance(0.5) {
        rng.pick(STEMS).to_string()
    } else {
        let sep = rng.pick(&["-", "_", "", "-"]);
        let n = 1 + rng.below(2);
        (0..n)
            .map(|_| rng.pick(WORDS).to_lowercase())
            .collect::<Vec<_>>()
            .join(sep)
    };
    if rng.chance(0.1) {
        stem = format!("{stem}{}", rng.below(100));
    }
    if rng.chance(0.08) {
        stem = stem.to_uppercase();
    } else if rng.chance(0.1) {
        let mut c = stem.chars();
        stem = c
            .next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default();
    }
    let name = format!("{stem}{}", rng.pick(EXTENSIONS));
    if rng.chance(0.4) {
        format!("{}/{name}", dir(rng).trim_end_matches('/'))
    } else {
        name
    }
}

/// The words the paraphrase grammar writes around values — its verbs, descriptors,
/// polite and terse forms (`view`, `folder`, `called`, `please`), lowercase. Constrained
/// decoding never reads one of them, unquoted, as a path or a recipient.
pub fn request_words() -> &'static BTreeSet<String> {
    static WORDS: OnceLock<BTreeSet<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let tools = [
            "fs.read",
            "fs.list",
            "fs.list-here",
            "fs.write",
            "fs.move",
            "fs.delete",
            "proc.exec",
            "msg.send",
        ];
        tools
            .iter()
            .flat_map(|t| frames(t).iter())
            .chain(FILES)
            .chain(FOLDERS)
            .chain(PREFIXES)
            .chain(SUFFIXES)
            .flat_map(|text| text.split_whitespace())
            .filter(|w| !w.contains('{'))
            .map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_ascii_lowercase()
            })
            .filter(|w| w.chars().any(|c| c.is_ascii_alphabetic()))
            .collect()
    })
}

/// A value as the request writes it: bare or in one of several quoting styles.
fn quoted(rng: &mut Rng, v: &str, bare_ok: bool) -> String {
    let r = rng.below(100);
    if bare_ok && r < 55 {
        v.to_string()
    } else if r < 85 || !bare_ok && r < 90 {
        format!("\"{v}\"")
    } else if r < 95 {
        format!("'{v}'")
    } else {
        format!("`{v}`")
    }
}

/// Fills `frame`'s `{name}` slots from `args` (already quoted for the request).
fn fill(frame: &str, args: &BTreeMap<&str, String>) -> String {
    let mut s = frame.to_string();
    for (k, v) in args {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Frames of the shipped tools: each a request with `{arg}` slots.
fn frames(tool: &str) -> &'static [&'static str] {
    match tool {
        "fs.read" => &[
            "read {path}",
            "show {path}",
            "show me {path}",
            "display {path}",
            "print {path}",
            "cat {path}",
            "open {path}",
            "view {path}",
            "read the file {path}",
            "show me the file {path}",
            "what's in {path}",
            "what is in the file {path}",
            "what's inside {path}?",
            "show the contents of {path}",
            "print out {path}",
            "let me see {path}",
            "I want to read {path}",
            "I'd like to see {path}",
            "can I see {path}?",
            "read me {path}",
            "output {path}",
            "type out {path}",
            "bring up {path}",
            "display the contents of {path}",
            "open the file {path}",
            "what does {path} contain?",
            "what does the file {path} say",
            "get {path}",
            "look at {path}",
            "check what {path} says",
            "read {path} to me",
            "show what's in {path}",
            "I need the contents of {path}",
            "{path}: read it",
            "open up {path}",
            "let me look at {path}",
            "read through {path}",
            "give me {path}",
            "show me what {path} says",
            "what's written in the file {path}",
        ],
        "fs.list" => &[
            "list {path}",
            "ls {path}",
            "list the files in {path}",
            "list files in {path}",
            "what files are in {path}",
            "what's in the folder {path}",
            "what is in the directory {path}?",
            "show me the folder {path}",
            "show the files in {path}",
            "list the directory {path}",
            "list the contents of {path}",
            "which files are in {path}?",
            "what's inside the directory {path}",
            "show me what's in the folder {path}",
            "list everything in {path}",
            "give me the list of files in {path}",
            "what do I have in {path}",
            "show the directory listing of {path}",
            "files in {path}?",
            "list the folder {path}",
            "look inside the folder {path}",
            "tell me what files {path} has",
            "ls the folder {path}",
        ],
        "fs.list-here" => &[
            "list files",
            "list the files",
            "ls",
            "what files are here",
            "what files do I have",
            "show me the files",
            "list this folder",
            "what's in the current directory",
            "list the current folder",
            "show the workspace",
            "what is in my workspace?",
            "list everything",
            "which files are there?",
            "show me what's here",
            "list the directory",
            "what's here",
            "show all files",
            "list my files",
        ],
        "fs.write" => &[
            "write {content} to {path}",
            "save {content} to {path}",
            "write {content} into {path}",
            "put {content} in {path}",
            "write {path} with {content}",
            "create {path} with {content}",
            "create a file {path} containing {content}",
            "save {content} as {path}",
            "write to {path}: {content}",
            "in {path} write {content}",
            "make {path} say {content}",
            "store {content} in the file {path}",
            "replace the contents of {path} with {content}",
            "fill {path} with {content}",
            "add {content} to {path}",
            "write the text {content} to the file {path}",
            "create the file {path} with the text {content}",
            "{path} should contain {content}",
            "save the text {content} in {path}",
            "update {path} to say {content}",
            "write a file called {path} that says {content}",
            "note {content} in {path}",
        ],
        "fs.move" => &[
            "move {src} to {dst}",
            "rename {src} to {dst}",
            "mv {src} {dst}",
            "rename {src} as {dst}",
            "move {src} into {dst}",
            "put {src} in {dst}",
            "relocate {src} to {dst}",
            "move the file {src} to {dst}",
            "rename the file {src} to {dst}",
            "change the name of {src} to {dst}",
            "I want {src} renamed to {dst}",
            "call {src} {dst} instead",
            "{src} should be called {dst}",
            "transfer {src} to {dst}",
            "move {src} over to {dst}",
            "give {src} the name {dst}",
            "take {src} and move it to {dst}",
            "{src} -> {dst}",
            "rename {src} into {dst}",
            "move {src} to the new location {dst}",
            "shift {src} to {dst}",
        ],
        "fs.delete" => &[
            "delete {path}",
            "remove {path}",
            "rm {path}",
            "trash {path}",
            "erase {path}",
            "get rid of {path}",
            "throw away {path}",
            "discard {path}",
            "delete the file {path}",
            "remove the file {path}",
            "wipe {path}",
            "destroy {path}",
            "delete {path} now",
            "I don't need {path} any more",
            "{path} can go",
            "toss {path}",
            "move {path} to the trash",
            "put {path} in the bin",
            "clean up {path}",
            "purge {path}",
            "get {path} out of here",
            "delete the folder {path}",
            "remove the directory {path}",
            "zap {path}",
        ],
        "proc.exec" => &[
            "run {command}",
            "execute {command}",
            "run the command {command}",
            "exec {command}",
            "please run {command} in the shell",
            "start {command}",
            "launch {command}",
            "run {command} for me",
            "can you run {command}",
            "in the terminal, run {command}",
            "execute the command {command}",
            "run {command} in the workspace",
            "do {command}",
            "spawn {command}",
            "run this command: {command}",
            "I want to run {command}",
            "open a shell and run {command}",
            "{command} -- run that",
            "run the shell command {command}",
            "execute this: {command}",
            "call {command}",
        ],
        "msg.send" => &[
            "send a message to {to} saying {body}",
            "send {to} a message saying {body}",
            "message {to}: {body}",
            "tell {to} {body}",
            "tell {to} that {body}",
            "let {to} know {body}",
            "email {to}: {body}",
            "send {to} {body}",
            "write to {to}: {body}",
            "text {to} {body}",
            "notify {to}: {body}",
            "send {body} to {to}",
            "message {to} saying {body}",
            "ping {to}: {body}",
            "send an email to {to} saying {body}",
            "drop {to} a line: {body}",
            "tell {to} this: {body}",
            "say {body} to {to}",
            "send {to} the message {body}",
            "write {to} a message: {body}",
            "forward {body} to {to}",
            "let {to} know that {body}",
            "inform {to}: {body}",
            "message to {to}: {body}",
        ],
        _ => &[],
    }
}

/// What a request may call a file or a folder before naming it ("delete the folder
/// drafts").
const FILES: &[&str] = &["the file ", "file ", "the document ", "my file ", "the "];
const FOLDERS: &[&str] = &[
    "the folder ",
    "folder ",
    "the directory ",
    "directory ",
    "the dir ",
    "my folder ",
    "the ",
];

/// Whether `frame` already says what its `slot` is ("the file {path}").
fn described(frame: &str, slot: &str) -> bool {
    ["file ", "folder ", "directory ", "the "]
        .iter()
        .any(|d| frame.contains(&format!("{d}{slot}")))
}

/// Whether a value of this type is written bare in requests (paths, names) rather
/// than always quoted (bodies, contents, commands).
fn bare_ok(ty: ArgType) -> bool {
    matches!(ty, ArgType::Path | ArgType::Recipient)
}

/// Capitalizes the first letter, three times in ten.
fn dress(rng: &mut Rng, request: &str) -> String {
    let mut r = request.to_string();
    if rng.chance(0.3) {
        let mut c = r.chars();
        if let Some(f) = c.next() {
            r = f.to_uppercase().collect::<String>() + c.as_str();
        }
    }
    r
}

/// A polite or terse prefix and a suffix around `core`; a question when the prefix
/// asks one ("can you …?").
fn wrap(rng: &mut Rng, core: &str) -> String {
    let prefix = rng.pick(PREFIXES);
    let suffix = rng.pick(SUFFIXES);
    let mut s = format!("{prefix}{core}{suffix}");
    if (prefix.starts_with("can") || prefix.starts_with("could") || prefix.starts_with("would"))
        && rng.chance(0.6)
    {
        s = s.trim_end_matches(['.', '!']).to_string() + "?";
    }
    dress(rng, &s)
}

/// One request for `tool` (a shipped tool with a grammar, or any tool through its
/// templates and description).
fn request_for(rng: &mut Rng, registry: &Registry, tool: &Tool) -> Option<Example> {
    // fs.list of the workspace itself: no path in the request, the default in the call.
    if tool.name == "fs.list" && rng.chance(0.2) {
        let core = rng.pick(frames("fs.list-here"));
        return Some(Example {
            request: wrap(rng, core),
            call: "fs.list".into(),
        });
    }
    let shipped = frames(&tool.name);
    let frame = if !shipped.is_empty() {
        rng.pick(shipped).to_string()
    } else if !tool.templates.is_empty() {
        tool.templates[rng.below(tool.templates.len())].clone()
    } else {
        return None;
    };
    let mut values = BTreeMap::new();
    let mut in_request: BTreeMap<&str, String> = BTreeMap::new();
    for a in &tool.args {
        let slot = format!("{{{}}}", a.name);
        if !frame.contains(&slot) {
            match &a.default {
                Some(_) => continue,
                None => return None,
            }
        }
        // Folders are listed, and moved and deleted like files.
        let folder = tool.name == "fs.list"
            || (a.ty == ArgType::Path
                && matches!(tool.name.as_str(), "fs.move" | "fs.delete")
                && rng.chance(0.25));
        let v = if folder {
            dir(rng)
        } else {
            value(rng, a.ty, &a.name)
        };
        if !line::writable_value(&v) || (bare_ok(a.ty) && decode::is_request_word(v.as_bytes())) {
            return None;
        }
        let mut written = quoted(rng, &v, bare_ok(a.ty));
        if a.ty == ArgType::Path && !described(&frame, &slot) && rng.chance(0.2) {
            written = format!(
                "{}{written}",
                rng.pick(if folder { FOLDERS } else { FILES })
            );
        }
        in_request.insert(a.name.as_str(), written);
        values.insert(a.name.clone(), v);
    }
    // Two arguments with the same value make the copy ambiguous: draw again.
    let distinct: BTreeSet<&String> = values.values().collect();
    if distinct.len() != values.len() {
        return None;
    }
    let call = line::write(
        registry,
        Some(&Call {
            tool: tool.name.clone(),
            args: values.clone(),
        }),
    )
    .ok()?;
    let request = wrap(rng, &fill(&frame, &in_request));
    // Capitalizing the first letter must not change a value the call copies.
    let request = if values.values().all(|v| request.contains(v.as_str())) {
        request
    } else {
        let mut c = request.chars();
        let plain: String = c
            .next()
            .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
            .unwrap_or_default();
        if !values.values().all(|v| plain.contains(v.as_str())) {
            return None;
        }
        plain
    };
    Some(Example { request, call })
}

/// A request that is no tool call.
fn refusal(rng: &mut Rng) -> Example {
    const ASKS: &[&str] = &[
        "what is",
        "who is",
        "where is",
        "when is",
        "why is",
        "how do I",
        "how much is",
        "tell me about",
        "explain",
        "can you help with",
        "I wonder about",
        "do you like",
        "is there",
        "how about",
        "what do you think of",
        "remind me of",
        "show me how to",
        "order",
        "book",
        "buy",
        "cook",
        "find",
        "play",
        "watch",
        "call",
        "schedule",
        "turn on",
        "turn off",
        "feed",
        "walk",
        "fix",
        "paint",
        "plant",
        "bake",
        "sing",
    ];
    let r = rng.below(100);
    let request = if r < 45 {
        rng.pick(NOT_TOOL_CALLS).to_string()
    } else if r < 75 {
        format!("{} {}", rng.pick(ASKS), phrase(rng, 1, 5))
    } else if r < 85 {
        phrase(rng, 2, 8)
    } else {
        let f = file(rng);
        rng.pick(FILE_MENTIONS).replace("{f}", &f)
    };
    Example {
        request: wrap(rng, &request),
        call: line::NONE.into(),
    }
}

/// A made-up verb ("florp", "snandle up"): no word the grammar or English knows for a
/// file operation.
fn made_up_verb(rng: &mut Rng) -> String {
    const ONSETS: &[&str] = &[
        "bl", "fl", "gr", "sn", "tr", "z", "k", "v", "pl", "dr", "sk", "m", "n", "br", "sw", "gl",
        "st", "cr", "p", "j", "h", "qu", "w", "th", "sh", "f", "g", "l",
    ];
    const NUCLEI: &[&str] = &[
        "a", "e", "i", "o", "u", "oo", "ee", "ai", "ou", "y", "ar", "or",
    ];
    const CODAS: &[&str] = &[
        "rf", "nk", "ng", "mp", "sh", "x", "zz", "rb", "ll", "nd", "ck", "t", "b", "p", "m", "rk",
        "ft", "dge", "nch", "g",
    ];
    loop {
        let mut v = String::new();
        for _ in 0..1 + rng.below(2) {
            v.push_str(rng.pick(ONSETS));
            v.push_str(rng.pick(NUCLEI));
        }
        v.push_str(rng.pick(CODAS));
        match rng.below(10) {
            0 => v.push_str("le"),
            1 => v.push_str("er"),
            _ => {}
        }
        if rng.chance(0.2) {
            v.push(' ');
            v.push_str(rng.pick(&["up", "out", "down", "over", "off", "through"]));
        }
        if !decode::is_request_word(v.split(' ').next().unwrap_or("").as_bytes()) {
            return v;
        }
    }
}

/// A request whose verb is made up (`florp data/users.json`): what it asks is read from
/// its shape alone, and never destructively. A file is read and a folder listed; a
/// path to another is a move; a quotation into a file is a write, to a person a
/// message; a quotation alone is a command; a plain word is no tool call. A model that
/// meets a verb it has never seen ("dump", "peruse") falls back on the same reading.
fn unknown_verb(rng: &mut Rng, registry: &Registry) -> Option<Example> {
    let verb = made_up_verb(rng);
    let q = |rng: &mut Rng, v: &str| quoted(rng, v, false);
    let mut args = BTreeMap::new();
    let (tool, core) = match rng.below(8) {
        0 | 1 => {
            let f = file(rng);
            let d = if rng.chance(0.3) { rng.pick(FILES) } else { "" };
            args.insert("path".to_string(), f.clone());
            ("fs.read", format!("{verb} {d}{f}"))
        }
        2 => {
            let mut d = dir(rng);
            let desc = rng.pick(FOLDERS);
            if desc == "the " && !d.contains('/') {
                d.push('/');
            }
            args.insert("path".to_string(), d.clone());
            ("fs.list", format!("{verb} {desc}{d}"))
        }
        3 => {
            let (a, b) = (
                file(rng),
                if rng.chance(0.3) { dir(rng) } else { file(rng) },
            );
            let to = rng.pick(&["to", "into", "as", "over to"]);
            args.insert("src".to_string(), a.clone());
            args.insert("dst".to_string(), b.clone());
            ("fs.move", format!("{verb} {a} {to} {b}"))
        }
        4 => {
            let (f, c) = (file(rng), value(rng, ArgType::Text, "content"));
            args.insert("path".to_string(), f.clone());
            args.insert("content".to_string(), c.clone());
            let c = q(rng, &c);
            let to = rng.pick(&["in", "into", "to", "onto"]);
            if rng.chance(0.7) {
                ("fs.write", format!("{verb} {c} {to} {f}"))
            } else {
                ("fs.write", format!("{verb} {f} with {c}"))
            }
        }
        5 => {
            let c = value(rng, ArgType::Command, "command");
            args.insert("command".to_string(), c.clone());
            ("proc.exec", format!("{verb} {}", q(rng, &c)))
        }
        6 => {
            let (to, body) = (recipient(rng), value(rng, ArgType::Text, "body"));
            args.insert("to".to_string(), to.clone());
            args.insert("body".to_string(), body.clone());
            let b = q(rng, &body);
            if rng.chance(0.7) {
                ("msg.send", format!("{verb} {to} {b}"))
            } else {
                ("msg.send", format!("{verb} {b} to {to}"))
            }
        }
        _ => {
            let thing = phrase(rng, 1, 3)
                .trim_end_matches(['?', '!', '.'])
                .to_string();
            let det = rng.pick(&["the", "a", "my", "me a", "some"]);
            return Some(Example {
                request: wrap(rng, &format!("{verb} {det} {thing}")),
                call: line::NONE.into(),
            });
        }
    };
    if args
        .values()
        .any(|v| !line::writable_value(v) || decode::is_request_word(v.as_bytes()))
    {
        return None;
    }
    let distinct: BTreeSet<&String> = args.values().collect();
    if distinct.len() != args.len() || registry.get(tool).is_none() {
        return None;
    }
    let call = line::write(
        registry,
        Some(&Call {
            tool: tool.to_string(),
            args: args.clone(),
        }),
    )
    .ok()?;
    let request = wrap(rng, &core);
    if !args.values().all(|v| request.contains(v.as_str())) {
        return None;
    }
    Some(Example { request, call })
}

/// `count` examples from `registry`'s tools (those a model may propose), about one in
/// eight a refusal, the rest spread evenly over the tools.
pub fn generate(registry: &Registry, count: usize, seed: u64) -> Vec<Example> {
    let mut rng = Rng(seed ^ 0x5ca1_1ab1_e5ca_11ab);
    let tools: Vec<&Tool> = registry
        .tools()
        .iter()
        .filter(|t| t.approval != crate::registry::Approval::Never)
        .collect();
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0usize;
    while out.len() < count && attempts < count * 20 {
        attempts += 1;
        if tools.is_empty() || rng.below(8) == 0 {
            out.push(refusal(&mut rng));
            continue;
        }
        if rng.below(9) == 0 {
            if let Some(e) = unknown_verb(&mut rng, registry) {
                out.push(e);
            }
            continue;
        }
        let tool = tools[rng.below(tools.len())];
        if let Some(e) = request_for(&mut rng, registry, tool) {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_and_its_values_are_copied_from_the_request() {
        let r = Registry::default();
        let examples = generate(&r, 3000, 7);
        assert_eq!(examples.len(), 3000);
        let mut per_tool: BTreeMap<String, usize> = BTreeMap::new();
        for e in &examples {
            let call = line::parse(&r, &e.call).unwrap_or_else(|err| panic!("{e:?}: {err}"));
            let name = call.as_ref().map_or("none".to_string(), |c| c.tool.clone());
            *per_tool.entry(name).or_default() += 1;
            if let Some(c) = call {
                for (k, v) in &c.args {
                    let defaulted = r
                        .get(&c.tool)
                        .and_then(|t| t.args.iter().find(|a| &a.name == k))
                        .and_then(|a| a.default.as_ref())
                        == Some(v);
                    assert!(defaulted || e.request.contains(v.as_str()), "{e:?}");
                }
            }
            // Constrained decoding can write every training line.
            assert!(
                decode::Grammar::new(&r, &e.request).allows(&e.call),
                "the grammar refuses {e:?}"
            );
        }
        assert_eq!(per_tool.len(), 8, "seven tools and refusals: {per_tool:?}");
        assert!(per_tool.values().all(|&n| n > 200), "{per_tool:?}");
    }

    #[test]
    fn a_seed_gives_the_same_corpus() {
        let r = Registry::default();
        assert_eq!(generate(&r, 200, 3), generate(&r, 200, 3));
        assert_ne!(generate(&r, 200, 3), generate(&r, 200, 4));
    }
}
