package realtime

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// rawEncoder writes an event whose one argument is a json.RawMessage (every
// outbox event: see outgoing) as `2["name",<raw>]` without going through
// json.Marshal, which would walk, validate and compact the stored JSON again
// for every event. Everything else (acks, heartbeats, errors) goes to the
// library's encoder.
type rawEncoder struct{ parser.Encoder }

func (p gatedParser) NewEncoder() parser.Encoder { return rawEncoder{p.Parser.NewEncoder()} }

func (e rawEncoder) Encode(p *parser.Packet) []types.BufferInterface {
	args, _ := p.Data.([]any)
	if p.Type != parser.EVENT || len(args) != 2 {
		return e.Encoder.Encode(p)
	}
	name, ok := args[0].(string)
	raw, ok2 := args[1].(json.RawMessage)
	if !ok || !ok2 || len(raw) == 0 {
		return e.Encoder.Encode(p)
	}
	b := make([]byte, 0, len(raw)+len(name)+len(p.Nsp)+24)
	b = append(b, byte(parser.EVENT)+'0')
	if p.Nsp != "" && p.Nsp != "/" {
		b = append(b, p.Nsp...)
		b = append(b, ',')
	}
	if p.Id != nil {
		b = strconv.AppendUint(b, *p.Id, 10)
	}
	return []types.BufferInterface{types.NewStringBuffer(appendEventArgs(b, name, raw))}
}

// appendEventPacket appends the Socket.IO EVENT packet of the default
// namespace for an event with one JSON argument: 2["name",<raw>].
func appendEventPacket(b []byte, name string, raw json.RawMessage) []byte {
	return appendEventArgs(append(b, byte(parser.EVENT)+'0'), name, raw)
}

func appendEventArgs(b []byte, name string, raw json.RawMessage) []byte {
	b = append(b, '[')
	if plainName(name) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"')
	} else {
		quoted, _ := json.Marshal(name)
		b = append(b, quoted...)
	}
	b = append(b, ',')
	b = append(b, raw...)
	return append(b, ']')
}

// plainName reports whether name can be written between quotes as it is:
// valid UTF-8 with nothing JSON would escape.
func plainName(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return utf8.ValidString(name)
}
