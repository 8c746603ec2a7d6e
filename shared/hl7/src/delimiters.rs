//! The encoding characters of a message (MSH-1 and MSH-2), including the
//! three-character forms real senders use.
/// The message's encoding characters, from MSH-1 and MSH-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delimiters {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    /// `None` when MSH-2 declares no escape character.
    pub escape: Option<u8>,
    /// `None` when MSH-2 is `^~\` (three characters, no subcomponents): `&`
    /// is then plain text.
    pub subcomponent: Option<u8>,
    /// The v2.7 truncation character, when MSH-2 has a fifth character.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

impl Delimiters {
    /// MSH-2 as it is written in a message with these delimiters.
    pub fn encoding_characters(&self) -> Vec<u8> {
        let mut out = vec![self.component, self.repetition];
        // A missing escape or subcomponent character leaves three characters,
        // read back by position (`^~\` or `^~&`, see `parse_msh_prefix`).
        out.extend(self.escape);
        out.extend(self.subcomponent);
        out.extend(self.truncation);
        out
    }
}
