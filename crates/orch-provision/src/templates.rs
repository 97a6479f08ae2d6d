//! Files rendered during provisioning from `templates/` (compiled in): systemd units, the
//! supervisor script for hosts without systemd, cloud-init user data, the Dockerfile of the
//! node image. A template names its values `{{ name }}`; rendering fails on a name it is not
//! given, so a template and its caller cannot drift apart silently.
//!
//! May depend on: nothing of the crate. Pure.

/// A template names a value it was not given, or is not closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{ name }}` with no value.
    #[error("template {template} uses {{{{ {name} }}}}, which has no value")]
    Unknown {
        /// The template's file name.
        template: &'static str,
        /// The name.
        name: String,
    },
    /// `{{` without `}}`.
    #[error("template {template} has an unclosed {{{{ at byte {at}")]
    Unclosed {
        /// The template's file name.
        template: &'static str,
        /// Where.
        at: usize,
    },
}

/// A template: its file name under `templates/` and its text.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// The file name.
    pub name: &'static str,
    /// The text.
    pub text: &'static str,
}

/// Fills in `{{ name }}` from `values`.
pub fn render(template: Template, values: &[(&str, &str)]) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.text.len());
    let mut rest = template.text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError::Unclosed {
                template: template.name,
                at: offset + open,
            });
        };
        let name = after[..close].trim();
        let value = values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .ok_or_else(|| TemplateError::Unknown {
                template: template.name,
                name: name.to_owned(),
            })?;
        out.push_str(value);
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Template = Template {
        name: "t.service",
        text: "ExecStart={{ binary }} {{args}}\n",
    };

    #[test]
    fn fills_in_every_name_and_refuses_unknown_ones() {
        let text = render(T, &[("binary", "/opt/orch/bin/orch"), ("args", "master")]);
        assert_eq!(text.as_deref(), Ok("ExecStart=/opt/orch/bin/orch master\n"));
        assert_eq!(
            render(T, &[("binary", "x")]),
            Err(TemplateError::Unknown {
                template: "t.service",
                name: "args".to_owned()
            })
        );
        let open = Template {
            name: "o",
            text: "a {{ b",
        };
        assert!(matches!(
            render(open, &[]),
            Err(TemplateError::Unclosed { at: 2, .. })
        ));
    }
}
