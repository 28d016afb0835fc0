package names

// The word lists are fixed data, not configuration: short, friendly words that
// read unambiguously when spoken or typed, each a valid name on its own.
// TestWordsValid keeps them that way.

var adjectives = [...]string{
	"amber", "ample", "azure", "balmy", "bold", "brave", "breezy", "bright",
	"brisk", "bubbly", "calm", "candid", "cheery", "chill", "clever", "cosy",
	"crisp", "curly", "daring", "dapper", "deft", "dewy", "eager", "early",
	"easy", "fancy", "fast", "fluffy", "fond", "frank", "fresh", "frisky",
	"gentle", "giddy", "glad", "gleeful", "golden", "grand", "happy", "hardy",
	"hearty", "honest", "humble", "jazzy", "jolly", "jovial", "keen", "kind",
	"lively", "loyal", "lucky", "lunar", "mellow", "merry", "mighty", "mild",
	"minty", "modest", "neat", "nifty", "nimble", "noble", "peppy", "perky",
	"plucky", "plush", "polite", "proud", "quick", "quiet", "rapid", "ready",
	"regal", "rosy", "rustic", "savvy", "shiny", "silky", "snappy", "snug",
	"solar", "spry", "steady", "sunny", "super", "sure", "swift", "tidy",
	"tender", "trusty", "upbeat", "vivid", "warm", "wavy", "wise", "witty",
	"zany", "zesty", "zippy", "cosmic", "dreamy", "fuzzy", "gusty", "jumpy",
	"misty", "sleek", "sturdy", "velvet", "wild", "woolly",
}

var nouns = [...]string{
	"acorn", "alpaca", "badger", "beacon", "beaver", "bison", "bobcat", "breeze",
	"brook", "cactus", "canyon", "cedar", "comet", "condor", "coral", "cougar",
	"coyote", "crane", "cricket", "dingo", "dolphin", "dove", "eagle", "ember",
	"falcon", "ferret", "fern", "finch", "fjord", "forest", "fox", "gazelle",
	"gecko", "geyser", "glacier", "grove", "gull", "harbor", "hare", "hawk",
	"hedge", "heron", "hippo", "ibis", "iguana", "island", "jackal", "jaguar",
	"kestrel", "kiwi", "koala", "lagoon", "lark", "lemur", "lily", "llama",
	"lotus", "lynx", "magpie", "maple", "marmot", "meadow", "meerkat", "mesa",
	"moose", "moth", "newt", "oasis", "ocelot", "orca", "osprey", "otter",
	"owl", "panda", "parrot", "pebble", "pelican", "penguin", "pine", "plover",
	"puffin", "quail", "rabbit", "raven", "reef", "river", "robin", "salmon",
	"seal", "sparrow", "spruce", "squid", "stork", "summit", "swan", "tapir",
	"thistle", "tiger", "toucan", "tulip", "tundra", "turtle", "valley", "walrus",
	"willow", "wombat", "wren", "yak", "zebra", "nebula",
}
