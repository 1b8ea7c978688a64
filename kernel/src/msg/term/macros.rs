//! `term!`: Erlang-looking term literals in Rust code (`term!({error, {fault, data_abort}})`).

/// Builds a [`Term`](crate::msg::Term) from Erlang-like syntax.
///
/// | form | makes |
/// | --- | --- |
/// | `{a, b, ...}`, `{}` | a tuple of the elements (each any form in this table) |
/// | `[a, b, ...]`, `[]` | a proper list (there are no improper lists) |
/// | `ok`, `data_abort` | a bare identifier is the atom of that name |
/// | `42`, `-5`, `1.5` | a number literal: an integer (`i64`) or a float |
/// | `"text"` | a binary holding the UTF-8 bytes (like an Elixir string) |
/// | `(expr)` | any Rust expression, converted with `Term::from`: a `Term`, `Atom`, `Pid`, `Reference`, `i64`, `bool`, `&str`... |
///
/// Atoms that are not identifiers (`'EXIT'`, `'hello world'`) are embedded as expressions:
/// `(atom::EXIT)` or `(Atom::new("hello world"))`. So is a negative variable: `(-n)`.
/// Embedded terms are moved into the new one; pass `(t.clone())` to keep `t`. A bare
/// identifier is always an atom, whatever its case (`Foo` is the atom `'Foo'`), never a
/// variable: use `(foo)` for a variable.
///
/// Each element is built separately and then copied into its container (one allocation per
/// boxed element and one for the container): fine for messages and exit reasons, not for a
/// hot loop building big terms.
///
/// ```
/// use kernel::msg::{atom, Atom, Term};
/// use kernel::process::Pid;
/// use kernel::term;
///
/// let reason = term!({error, {fault, data_abort}});
/// assert_eq!(reason.to_string(), "{error,{fault,data_abort}}");
///
/// let pid = Pid::new(42, 3);
/// let exit = term!({(atom::EXIT), (pid), (reason)});
/// assert_eq!(exit.to_string(), "{'EXIT',<0.42.3>,{error,{fault,data_abort}}}");
///
/// assert_eq!(term!([1, -2, 3.5, "hi", [], {}]).to_string(), "[1,-2,3.5,<<\"hi\">>,[],{}]");
/// assert_eq!(term!((Atom::new("hello world"))).to_string(), "'hello world'");
/// assert_eq!(term!(ok), Term::atom(atom::OK));
/// ```
#[macro_export]
macro_rules! term {
    // Internal: munch the comma-separated elements of a tuple or list into `[$out,]`. A
    // literal is tried first because `-5` is two tokens but one `literal` fragment.
    (@items $make:ident [$($out:expr,)*]) => {
        $crate::msg::Term::$make([$($out),*])
    };
    (@items $make:ident [$($out:expr,)*] $item:literal $(, $($rest:tt)*)?) => {
        $crate::term!(@items $make [$($out,)* $crate::term!($item),] $($($rest)*)?)
    };
    (@items $make:ident [$($out:expr,)*] $item:tt $(, $($rest:tt)*)?) => {
        $crate::term!(@items $make [$($out,)* $crate::term!($item),] $($($rest)*)?)
    };

    ({ $($items:tt)* }) => {
        $crate::term!(@items tuple [] $($items)*)
    };
    ([ $($items:tt)* ]) => {
        $crate::term!(@items list [] $($items)*)
    };
    (( $value:expr )) => {
        $crate::msg::Term::from($value)
    };
    ($atom:ident) => {
        $crate::msg::Term::atom($crate::msg::Atom::new(::core::stringify!($atom)))
    };
    ($literal:literal) => {
        $crate::msg::Term::from($literal)
    };
}
