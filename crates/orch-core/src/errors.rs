//! Error text for people: an error followed by its sources, joined by ": ".
//!
//! May depend on: nothing internal.

/// `error: cause: cause …`, for messages that should say why.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot fetch")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn sources_follow_the_error() {
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(super::chain(&error), "cannot fetch: connection refused");
    }
}
