#pragma once
// placeholder: the fake OpenAI-compatible server's launcher (filled by its owner)
