//! Erlang's term order, as a total order on the decoded encoding (pure: no allocation).
//!
//! `number < atom < reference < pid < tuple < list < binary`. Numbers compare by value across
//! integers and floats, and an integer comes before a float of the same value (`1 < 1.0`), so
//! that the order stays total and agrees with exact equality (`1 =/= 1.0`). Atoms compare by
//! name, tuples by size and then element by element, lists and binaries lexicographically.
//!
//! The comparison walks both terms side by side with a [`Walker`]: the first event that
//! differs decides. That is the term order because walkers that have agreed so far are at the
//! same place in the same shape: a `Close` against anything else means one list ended first
//! (the shorter is smaller), and a tuple's size is compared at its `Open`.

use core::cmp::Ordering;

use super::block::{Cell, Event, Kind, Leaf, Walker, float_key};

pub(super) fn compare(a: Cell<'_>, b: Cell<'_>) -> Ordering {
    let (mut a, mut b) = (Walker::new(a), Walker::new(b));
    loop {
        let order = match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (Some(x), Some(y)) => event(x, y),
            // Cannot happen after equal events (same shape so far), but stays total if it did.
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
        };
        if order.is_ne() {
            return order;
        }
    }
}

/// Rank in the order of kinds; a `Close` is below everything (a list that ends first is
/// smaller).
fn rank(event: &Event<'_>) -> u8 {
    match event {
        Event::Close(_) => 0,
        Event::Leaf(Leaf::Int(_) | Leaf::Float(_)) => 1,
        Event::Leaf(Leaf::Atom(_)) => 2,
        Event::Leaf(Leaf::Ref(_)) => 3,
        Event::Leaf(Leaf::Pid(_)) => 4,
        Event::Open(Kind::Tuple, _) => 5,
        Event::Open(Kind::List, _) => 6,
        Event::Leaf(Leaf::Binary(_)) | Event::Open(Kind::Binary, _) => 7,
    }
}

fn event(a: Event<'_>, b: Event<'_>) -> Ordering {
    rank(&a).cmp(&rank(&b)).then_with(|| match (a, b) {
        (Event::Open(Kind::Tuple, x), Event::Open(Kind::Tuple, y)) => x.cmp(&y),
        (Event::Leaf(x), Event::Leaf(y)) => leaf(x, y),
        // Two lists opening (compared element by element next), or two closes.
        _ => Ordering::Equal,
    })
}

fn leaf(a: Leaf<'_>, b: Leaf<'_>) -> Ordering {
    match (a, b) {
        (Leaf::Int(x), Leaf::Int(y)) => x.cmp(&y),
        (Leaf::Float(x), Leaf::Float(y)) => float(x, y),
        (Leaf::Int(x), Leaf::Float(y)) => int_float(x, y),
        (Leaf::Float(x), Leaf::Int(y)) => int_float(y, x).reverse(),
        (Leaf::Atom(x), Leaf::Atom(y)) if x == y => Ordering::Equal,
        (Leaf::Atom(x), Leaf::Atom(y)) => x.name().cmp(y.name()),
        (Leaf::Ref(x), Leaf::Ref(y)) => x.cmp(&y),
        (Leaf::Pid(x), Leaf::Pid(y)) => x.cmp(&y),
        (Leaf::Binary(x), Leaf::Binary(y)) => x.cmp(y),
        _ => unreachable!("leaves of different ranks"),
    }
}

/// Floats by value with `-0.0 == 0.0`; NaNs (which Erlang never makes) by `total_cmp`, above
/// `+inf` when positive and below `-inf` when negative, equal only to themselves.
fn float(x: f64, y: f64) -> Ordering {
    f64::from_bits(float_key(x)).total_cmp(&f64::from_bits(float_key(y)))
}

/// An integer against a float, exactly (no rounding of the integer to f64); on a tie the
/// integer is smaller.
fn int_float(i: i64, f: f64) -> Ordering {
    /// 2^63: the first float above every `i64`.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return if f.is_sign_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    // In range, `as` truncates toward zero exactly; and `whole as f64` is exact too (below
    // 2^53 every integer is a float; at or above it `f` has no fraction, so `whole` is `f`).
    let whole = f as i64;
    i.cmp(&whole).then_with(|| {
        let back = whole as f64;
        if f < back {
            Ordering::Greater
        } else {
            // f > back: the fraction lifts f above i. f == back: a tie, integer first.
            Ordering::Less
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_against_floats_compare_exactly() {
        use Ordering::*;
        assert_eq!(int_float(1, 1.0), Less, "tie: integer first");
        assert_eq!(int_float(1, 1.5), Less);
        assert_eq!(int_float(2, 1.5), Greater);
        assert_eq!(int_float(-2, -1.5), Less);
        assert_eq!(int_float(-1, -1.5), Greater);
        assert_eq!(int_float(0, -0.0), Less);
        assert_eq!(int_float(0, -0.5), Greater);
        assert_eq!(int_float(-1, -0.5), Less);
        let two_63 = 2f64.powi(63);
        assert_eq!(int_float(i64::MAX, i64::MAX as f64), Less, "that is 2^63");
        assert_eq!(
            int_float(i64::MAX, two_63 - 1024.0),
            Greater,
            "the float below"
        );
        assert_eq!(int_float(i64::MAX - 1022, two_63 - 1024.0), Greater);
        assert_eq!(int_float(i64::MAX - 1023, two_63 - 1024.0), Less, "a tie");
        assert_eq!(int_float(i64::MAX - 1024, two_63 - 1024.0), Less);
        assert_eq!(int_float(i64::MIN, -two_63), Less);
        assert_eq!(int_float(i64::MIN, -1e19), Greater);
        // 2^53 + 1 is not a float; the nearest ones are 2^53 and 2^53 + 2.
        assert_eq!(int_float((1 << 53) + 1, 9007199254740992.0), Greater);
        assert_eq!(int_float((1 << 53) + 1, 9007199254740994.0), Less);
        assert_eq!(int_float(i64::MAX, f64::INFINITY), Less);
        assert_eq!(int_float(i64::MIN, f64::NEG_INFINITY), Greater);
        assert_eq!(int_float(0, f64::NAN), Less);
        assert_eq!(int_float(0, -f64::NAN), Greater);
    }

    #[test]
    fn floats_order_by_value_with_signed_zeros_equal() {
        assert_eq!(float(-0.0, 0.0), Ordering::Equal);
        assert_eq!(float(-1.0, 0.0), Ordering::Less);
        assert_eq!(float(f64::INFINITY, f64::NAN), Ordering::Less);
        assert_eq!(float(f64::NAN, f64::NAN), Ordering::Equal);
    }
}
