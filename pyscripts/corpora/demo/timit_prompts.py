"""Prompts of the demo TIMIT-layout corpus: simple sentences written for this project (public domain).

The first two are the dialect sentences every speaker reads (SA1, SA2); the generator splits the rest
into SX pools (each sentence read by several speakers) and SI sentences (read once), disjoint between
the TRAIN and TEST halves of the corpus, as in TIMIT. Only letters, apostrophes and light punctuation,
so that both synthesisers read exactly these words.
"""

PROMPTS = tuple(line for line in """
The old farmer kept a small boat near the quiet river.
Bring the red cup and the sharp knife to the kitchen table.
A gentle wind moved the tall grass along the hill.
The children painted a bright picture of a yellow house.
He found a treasure map in the usual place, under a blue bowl.
Our neighbor fixed the broken gate with a rusty nail.
The teacher asked every student to read the short story aloud.
She wrapped the gift in brown paper and tied it with string.
A heavy rain fell on the village through the whole night.
The dog chased the ball across the wet green field.
Please close the window before the cold air gets in.
The baker sold fresh bread to a long line of people.
They walked to the market early on a foggy morning.
The captain watched the dark clouds gather over the sea.
My brother found a silver coin under the old bridge.
The little bird built a nest in the apple tree.
We cooked a thick soup with beans, carrots and onions.
The train stopped at every station along the valley.
A thin layer of dust covered the wooden shelves.
The boy climbed the ladder to reach the top shelf.
Fresh snow made the streets quiet and very white.
The nurse gave the sick man a glass of warm water.
He tossed the letter into the fire without reading it.
The horse pulled the cart slowly up the steep road.
Her garden was full of roses, tulips and tall sunflowers.
The clock on the wall struck nine as we sat down.
A loud noise woke the family in the middle of the night.
The fisherman mended his net while the sun went down.
Keep the sharp tools away from the small children.
The library closes early on the last day of the week.
They planted a row of young trees beside the path.
The cat slept on a soft pillow near the stove.
We heard the church bells ring across the frozen lake.
The farmer sold his corn and wheat at a fair price.
A careful driver checks the brakes before a long trip.
The painter mixed blue and yellow to make a deep green.
She hummed a happy tune while she washed the dishes.
The young pilot landed the plane on the narrow strip.
Thick smoke rose from the chimney of the stone cottage.
The doctor told him to rest and drink plenty of tea.
A basket of ripe plums stood on the kitchen floor.
The miners walked home tired after a long day of work.
Each player must wait for a turn before moving a piece.
The wooden boat drifted slowly toward the sandy shore.
He kept his old watch in a small leather box.
The cook burned the toast and had to start again.
A flock of geese flew south over the quiet town.
The mayor gave a short speech in front of the hall.
Good boots keep your feet dry in the deep mud.
The girl drew a map of the island with a pencil.
Cold water from the well tasted sweet and clean.
The guests laughed at the jokes of the funny uncle.
A strong bridge was built across the wide river.
The lamp gave a dim light in the corner of the room.
Pack the food in a tin box so the mice cannot reach it.
The soldiers marched past the gate in a straight line.
She sewed a patch on the knee of his torn trousers.
The sheep grazed quietly on the side of the mountain.
He paid the bill and left a coin for the waiter.
Dry leaves blew across the yard and piled against the fence.
The teacher wrote the answer on the black board.
A tall man in a gray coat stood by the door.
The kettle began to whistle on the hot stove.
We spent the summer at a cabin by the lake.
The queen wore a gold ring with a large red stone.
Rain dripped from the roof into a tin bucket.
The puppy chewed a hole in my new shoe.
The sailors pulled hard on the ropes to raise the sail.
A cup of hot cocoa warms you on a winter evening.
The clerk stamped the papers and handed them back.
Bees buzzed around the flowers in the warm sunshine.
The old road winds through the forest to the village.
He lost his key and had to climb through the window.
The students cheered when the bell rang at noon.
A single candle burned on the table by the bed.
The truck carried logs down the mountain to the mill.
She put the eggs in a bowl and beat them with a fork.
The wind tore the flag from the top of the pole.
Our class visited a farm to see the cows and pigs.
The baby smiled and reached for the shiny spoon.
A narrow path led down the cliff to the beach.
The workers painted the fence white in two days.
He read the newspaper while he waited for the bus.
Ripe pears fell from the branches in the autumn wind.
The judge listened closely to both sides of the case.
The shop on the corner sells thread, buttons and cloth.
A sudden storm forced the boats back to the harbor.
The ice on the pond was thick enough to skate on.
My sister keeps her letters in a drawer by the bed.
The goat jumped over the low wall and ran away.
Please hand me the hammer and a few more nails.
The moon rose slowly above the dark pine trees.
Warm bread and butter make a simple but good supper.
The band played loud music in the park on Sunday.
The boy threw a stone and it skipped across the pond.
Every morning the mail arrives just after eight.
She tied a ribbon in her hair before the dance.
The tired hikers rested in the shade of a big rock.
The price of sugar went up again this month.
He carved a small duck from a piece of soft wood.
The fire truck raced down the street with its lights on.
A heavy box fell from the cart and broke open.
The wise owl watched the field from a high branch.
We rowed the boat across the bay before the tide turned.
The museum keeps old coins and swords behind glass.
Mother baked a peach pie for the family picnic.
The thick fog hid the ships from the lighthouse.
The puppy slept in a basket beside the warm fire.
He switched off the radio and opened a book.
The old mill stood beside a fast mountain stream.
Tiny fish swam in the clear water near the rocks.
She mailed the package on her way to the office.
The boys built a fort out of snow and ice.
A jar of honey sat on the shelf above the sink.
The farmer fed the chickens before the sun came up.
Their house has a red door and a wide front porch.
The rider jumped the fence and galloped into the woods.
He spilled the paint on the floor of the garage.
The frog sat on a lily pad in the middle of the pond.
Fresh lemons give the cake a sharp, clean taste.
The crowd waited outside the theater in the rain.
The carpenter measured the board twice before cutting it.
A gray squirrel buried nuts under the oak tree.
The ship sailed north through the cold and stormy sea.
They hung the washing on a line in the back yard.
The old car made a strange noise on the hill.
The children sang songs around the camp fire.
A bright star shone above the roof of the barn.
He scrubbed the pots until they were clean and shiny.
The path through the meadow was lined with daisies.
The guard locked the gate and walked back to his post.
Strong coffee kept the drivers awake through the night.
The goose waddled down to the edge of the water.
The quiet girl wrote poems in a green notebook.
Heavy trucks rumbled over the old stone bridge.
The king sent a message to the far side of the land.
Put the milk back in the cold box after supper.
A cool breeze came through the open kitchen door.
The wheel of the wagon broke on a sharp rock.
He planted potatoes and beans in the spring.
The pond froze solid during the long cold winter.
We watched the sun set behind the purple hills.
The children fed bread crumbs to the hungry ducks.
A thick book of maps lay open on the desk.
The weaver made a warm blanket from sheep's wool.
The postman whistled as he walked down the lane.
""".splitlines() if line)
